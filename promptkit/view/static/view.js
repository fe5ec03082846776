// Keyboard shortcuts on the review page: each button names its keys in data-key.
(function () {
  var form = document.getElementById('review-form');
  if (!form) return;
  document.addEventListener('keydown', function (e) {
    if (e.target && (e.target.tagName === 'INPUT' || e.target.tagName === 'TEXTAREA' || e.target.tagName === 'SELECT')) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var buttons = form.querySelectorAll('button[data-key]');
    for (var i = 0; i < buttons.length; i++) {
      if (buttons[i].dataset.key.split(' ').indexOf(e.key) >= 0 && !buttons[i].disabled) {
        e.preventDefault();
        form.requestSubmit(buttons[i]);
        return;
      }
    }
  });
})();

// Filter menus submit their form on change (no inline handlers: the pages' CSP allows no inline script).
(function () {
  var menus = document.querySelectorAll('select[data-autosubmit]');
  for (var i = 0; i < menus.length; i++) {
    menus[i].addEventListener('change', function () { this.form.submit(); });
  }
})();

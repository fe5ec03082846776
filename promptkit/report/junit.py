"""JUnit XML for CI systems: one <testsuite> per eval suite, one <testcase> per metric check."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from promptkit.config import atomic_write
from promptkit.errors import PromptkitError
from promptkit.report.format import printable

if TYPE_CHECKING:
    from promptkit.gate.decide import MetricCheck
    from promptkit.gate.results import CheckReport, SuiteCheck

# Characters XML 1.0 cannot hold at all: ElementTree writes them as they are and no parser reads the file
# back. Control characters are shown by `printable` first; this catches lone surrogates and U+FFFE/U+FFFF.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", printable(text))


def _case_text(check: MetricCheck) -> str:
    lines = [check.message]
    if check.test:
        lines.append(f"test: {check.test}, p-value {check.p_value:.4g}, "
                     f"interval of the change [{check.low:+.4g}, {check.high:+.4g}], {check.paired} paired examples")
    for row in check.flipped:
        lines.append(f"flipped #{row['index']} {row['id']}: {row['before']} -> {row['after']} "
                     f"(expected {row['expected']}): {row['input']}")
    return "\n".join(line for line in lines if line)


def _suite_element(suite: SuiteCheck) -> ET.Element:
    element = ET.Element("testsuite", name=f"promptkit.{suite.suite}")
    properties = ET.SubElement(element, "properties")
    for key, value in (("prompt", suite.prompt), ("prompt_hash", suite.prompt_hash), ("model", suite.model),
                       ("examples", str(suite.examples)), ("status", suite.status)):
        ET.SubElement(properties, "property", name=key, value=value)
    failures = errors = 0
    classname = f"promptkit.{suite.suite}"
    for check in suite.checks:
        case = ET.SubElement(element, "testcase", classname=classname, name=check.name)
        if not check.passed:
            failures += 1
            failure = ET.SubElement(case, "failure", message=check.message, type="regression")
            failure.text = _case_text(check)
        else:
            ET.SubElement(case, "system-out").text = _case_text(check)
    if suite.error or suite.stale:
        errors += 1
        case = ET.SubElement(element, "testcase", classname=classname, name="baseline" if suite.stale else "evaluate")
        text = suite.error or "stale baseline: " + "; ".join(suite.stale)
        ET.SubElement(case, "error", message=text, type="stale" if suite.stale else "error").text = text
    if not suite.checks and not (suite.error or suite.stale):
        ET.SubElement(element, "testcase", classname=classname, name="evaluate")
    element.set("tests", str(len(element.findall("testcase"))))
    element.set("failures", str(failures))
    element.set("errors", str(errors))
    return element


def junit_xml(report: CheckReport) -> str:
    root = ET.Element("testsuites", name="promptkit check")
    for suite in report.suites:
        root.append(_suite_element(suite))
    for element in root.iter():  # model outputs, inputs and error messages may hold any character
        element.text = _xml_text(element.text) if element.text else element.text
        for key, value in element.attrib.items():
            element.set(key, _xml_text(value))
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: CheckReport, path: Path) -> None:
    try:
        atomic_write(path, junit_xml(report))
    except OSError as e:
        raise PromptkitError(f"cannot write the JUnit report: {e.strerror or e}", where=str(path)) from None

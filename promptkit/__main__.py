from promptkit.cli import main

main(prog_name="promptkit")

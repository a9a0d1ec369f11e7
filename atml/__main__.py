from atml.cli import main

main()

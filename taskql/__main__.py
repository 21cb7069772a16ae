from taskql.cli.main import main

main()

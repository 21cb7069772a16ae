from taskql.cli import main

main()

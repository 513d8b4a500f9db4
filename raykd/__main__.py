from raykd.cli import main

main()

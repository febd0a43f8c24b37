from bsecrets.cli.entry import main

main()

"""`python -m controller` is the `trueup` command line (`controller.cli.entry`)."""

from controller.cli.entry import main

if __name__ == "__main__":
    main()

"""`python -m controller` is the `trueup` command line."""

from controller.cli.main import main

if __name__ == "__main__":
    main()

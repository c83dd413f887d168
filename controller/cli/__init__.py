"""The command line (`trueup ...`)."""

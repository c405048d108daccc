"""`python -m cgatrain` (also what torchrun runs with `-m cgatrain`)."""

from cgatrain.cli import main

if __name__ == "__main__":
    main()

"""`python -m cgatrain` (also what torchrun runs with `-m cgatrain`)."""

from cgatrain.entry import main

if __name__ == "__main__":
    main()

"""C{python -m enttok [options]}: the same as C{twistd -n --pidfile= enttok [options]}.

Handy where the C{twistd} script is not on the path (Electron spawns the
virtual environment's Python directly).
"""

import sys

from twisted.scripts.twistd import run


def main() -> None:
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "enttok", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()

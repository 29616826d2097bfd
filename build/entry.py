"""PyInstaller entry script: the same entry point as the `cssadmin` console script."""
from cssadmin.cli import run

if __name__ == "__main__":
    run()

"""Jane Austen's *Pride and Prejudice* (Project Gutenberg text, public
domain; via Debian's r-cran-janeaustenr 1.0.0): 684,768 characters, for
character-level language models.
"""
from engine.datasets._readers import bundled_file

FILE = "pride_and_prejudice.txt"


def load_data():
    """The whole novel as one str: ASCII, "\\n" line ends, 684,768
    characters (684,767 plus the final newline).

    >>> text = load_data()
    >>> text[:19]
    'PRIDE AND PREJUDICE'
    """
    with bundled_file(FILE) as path, open(path, encoding="utf-8") as f:
        return f.read()

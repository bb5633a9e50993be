"""mkdocs hook: adds the repository's notebooks (``notebooks/*.ipynb``) to the site as pages.

The notebooks stay where they are (the tests execute them there); this hook registers each one under
``notebooks/<name>.ipynb`` so the nav can list it and mkdocs-jupyter renders it with its stored outputs.
It runs before mkdocs-jupyter's own ``on_files`` (priority 100), which then wraps the files as notebooks.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]


@event_priority(100)
def on_files(files: Files, config) -> Files:
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        uri = f"notebooks/{nb.name}"
        if files.get_file_from_path(uri) is None:
            # A real file whose source folder is the repository root (not File.generated: mkdocs-jupyter's
            # wrapper recomputes the source path from src_dir, which a generated file does not have).
            files.append(
                File(uri, src_dir=str(ROOT), dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls)
            )
    return files

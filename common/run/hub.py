"""--push-to-hub USER/NAME: the saved output folder uploaded to a hub model repository, for users who have the hub.

Checked before training (a token, not offline), so that a run of an hour does not end in "no token"; uploaded
after the final save, and only the files runs wrote (the marker's list), never what the user added to the folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from common.errors import UserError, first_line
from common.train.checkpoints import RUN_MARKER, written_by_runs

logger = logging.getLogger(__name__)


def check_can_push(repo: str) -> None:
    """Before any work: a hub token is there and the hub is not switched off."""
    import huggingface_hub

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise UserError(f"--push-to-hub {repo} needs the hub, and HF_HUB_OFFLINE is set; unset it or drop the flag")
    if not huggingface_hub.get_token():
        raise UserError(f"--push-to-hub {repo} needs a hub token: run `hf auth login` or set HF_TOKEN")


def push_folder(output_dir: str | Path, repo: str) -> str:
    """Upload the run's files in `output_dir` to the model repository `repo` (created private if missing);
    returns the repository's address. A failed upload says that the run is saved and how to upload it later."""
    from huggingface_hub import HfApi

    output_dir = Path(output_dir)
    names = sorted((written_by_runs(output_dir) or {p.name for p in output_dir.iterdir()}) - {RUN_MARKER})
    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type="model", private=True, exist_ok=True)
        api.upload_folder(
            repo_id=repo,
            folder_path=output_dir,
            repo_type="model",
            allow_patterns=[*names, *(f"{name}/**" for name in names)],
            commit_message=f"lm-recipes run from {output_dir.name}",
        )
    except Exception as e:  # noqa: BLE001 - the network, the token's rights, the repo name: one line for each
        raise UserError(
            f"the run is saved in '{output_dir}', but the upload to {repo} failed ({first_line(e)}); upload it later "
            f"with `hf upload {repo} {output_dir}`"
        ) from None
    logger.info("uploaded %s to %s", output_dir, url)
    return str(url)

"""Chapter 3's one model switch, end to end: the whole chapter with ``MODEL, LAYER`` set to a
tiny GPT-2 built offline (one variable of the chapter switches the model everywhere).
``make colab`` runs it after the chapters, in its Colab-like venv.

The chapter's switch cell reads ``MODEL, LAYER = sae.MINILM, 3``. This script builds a
GPT-2-shaped model (``GPT2Model``: 2 blocks, width 128, random weights) and a byte-level BPE
tokenizer from the chapter's own prose corpus, with no download, saves both to a folder,
sets ``MODEL, LAYER = "<that folder>", 1`` and executes every cell of the chapter (nbclient,
activations cached in a temporary folder). It fails when a cell raises or when the
activations the chapter reports do not have the tiny model's width (the switch did not reach
them). Claim verdicts are printed, not required: the chapter's margins were chosen on MiniLM
and its text says they may not all hold on another model (a random model least of all).

The width is 128, not the 32 of tests/test_sae.py's switch test: the chapter's narrowest SAE
has 64 latents, and on 32-dimensional activations every width is overcomplete, FVU does not
fall with width and the chapter's power-law fit has nothing to fit.

    python tools/colab/model_switch.py
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "book" / "03_sae_error.ipynb"
SWITCH = re.compile(r"^MODEL, LAYER = sae\.MINILM, 3\b", re.M)
WIDTH, LAYER = 128, 1


def switch_cells(nb) -> list:
    """The code cells that hold the chapter's switch line (there must be exactly one)."""
    return [c for c in nb.cells if c.cell_type == "code" and SWITCH.search(c.source)]


def set_switch(nb, model: str, layer: int) -> None:
    """Point the chapter's switch at ``model`` and ``layer`` (in place)."""
    cells = switch_cells(nb)
    if len(cells) != 1:
        raise SystemExit(f"{CHAPTER.name}: expected one cell with 'MODEL, LAYER = sae.MINILM, 3', found {len(cells)}")
    cells[0].source = SWITCH.sub(f"MODEL, LAYER = {model!r}, {layer}", cells[0].source, count=1)


def tiny_gpt2(folder: Path, width: int = WIDTH) -> str:
    """A GPT-2-shaped model and a GPT-2-style tokenizer (byte-level BPE, no padding token),
    built offline and saved to ``folder``; returns the folder as the model name."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    from companion import sae

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sae.load_corpus("prose")[:40], vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=width, n_layer=2, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    GPT2Model(config).eval().save_pretrained(str(folder))
    return str(folder)


def _stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def main() -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    with tempfile.TemporaryDirectory(prefix="model-switch-") as tmp:
        tmp = Path(tmp)
        model = tiny_gpt2(tmp / "tiny-gpt2")
        nb = nbformat.read(CHAPTER, as_version=4)
        set_switch(nb, model, LAYER)
        os.environ.update(COMPANION_CACHE=str(tmp / "cache"), COMPANION_NO_PROGRESS="1",
                          HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
        start = time.time()
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(CHAPTER.parent)}})
        try:
            client.execute()
        except CellExecutionError as err:
            print(str(err)[-4000:])
            print(f"FAIL: {CHAPTER.name} with MODEL = a tiny GPT-2 (width {WIDTH}): a cell raised")
            return 1
    text = "\n".join(_stream(c) for c in nb.cells if c.cell_type == "code")
    widths = set(re.findall(r"\bd = (\d+)", text))
    if widths != {str(WIDTH)}:
        print(f"FAIL: the chapter reports activations of width {sorted(widths)}, the tiny GPT-2 has {WIDTH}: "
              "the switch did not reach every cell")
        return 1
    verdicts = re.findall(r": (True|False)$", text, re.M)
    print(f"model switch: every cell of {CHAPTER.name} ran with MODEL = a tiny GPT-2 (width {WIDTH}, layer {LAYER}) "
          f"in {time.time() - start:.0f} s; {verdicts.count('True')} of {len(verdicts)} printed claims hold "
          "on it (chosen on MiniLM, not required here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The SRAM a run sets aside for the input front end it will generate, before the search sees the budget.

A model trained on an image or WAV folder ships with ``image_frontend.c`` or ``audio_frontend.c``, whose
static buffers live beside the tensor arena. The firmware declares the arena with a margin
(``arena_size_with_margin``), so on a tight board a model that fills the arena budget leaves the front end
nothing: it would come out of the firmware's own reserve. A run on a microcontroller therefore searches
under the arena budget that leaves room for both: the largest arena whose firmware size (with its margin)
plus the smallest front end (for frames of the model's own input size, and, when the space can take the
pictures at a lower resolution, the rows of that second resize) fits. Deploy then sizes the image front end
for the largest camera frame the room left by the actual arena takes.

A budget given on the command line (``--arena-budget``) is the user's decision and is taken as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from tinynas.errors import SearchError

log = logging.getLogger(__name__)


def front_end_ram(dataset: Any, *, resized: bool = False) -> tuple[int, str] | None:
    """The static RAM of the smallest front end deploy writes for ``dataset`` and what it is; None when the
    dataset has none (built-in sets, .npz and .csv files feed the model's input as it is). ``resized``: the
    model may take the pictures at another size (``SearchSpace.resizes_input``), which the image front end
    does with two more rows."""
    audio = getattr(dataset, "audio_front_end", None)
    image = getattr(dataset, "image_front_end", None)
    if audio is not None:
        from tinynas.deploy.audio_frontend import static_ram_bytes

        return static_ram_bytes(audio), f"the audio front end ({audio.fft_size}-point FFT, {audio.num_mel_bins} mel bins)"
    if image is not None:
        from tinynas.deploy.image_frontend import model_resize_bytes, static_ram_bytes

        ram = static_ram_bytes(height=image.height, width=image.width, channels=image.channels,
                               max_source=(image.width, image.height))
        if resized:
            ram += model_resize_bytes(width=image.width, channels=image.channels)
        return ram, (f"the image front end (for {image.width}x{image.height} frames, the pictures' size"
                     + (", and their resize to the model's resolution)" if resized else ")"))
    return None


def reserve_front_end(profile: Any, dataset: Any, *, resized: bool = False) -> Any:
    """``profile`` with its arena budget lowered so the firmware's arena and ``dataset``'s front end both fit
    the budget it had (only microcontrollers, and only when the dataset has a front end); ``resized`` as for
    ``front_end_ram``.

    Raises SearchError when the front end and the smallest margin leave no arena at all."""
    need = front_end_ram(dataset, resized=resized)
    if profile.kind != "mcu" or need is None:
        return profile
    from dataclasses import replace

    from tinynas.deploy.codegen import arena_size_with_margin

    ram, what = need
    budget = int(profile.sram_budget_bytes)
    low, high = 0, budget  # the largest arena A with arena_size_with_margin(A) + ram <= budget (monotone in A)
    while low < high:
        mid = (low + high + 1) // 2
        if arena_size_with_margin(mid) + ram <= budget:
            low = mid
        else:
            high = mid - 1
    if low < 1:
        raise SearchError(f"{profile.id}'s arena budget of {budget:,} B cannot hold {what}, {ram:,} B of static "
                          "RAM, beside a tensor arena and its 1 KiB margin; pick a board with more SRAM, or give "
                          "--arena-budget N to decide the arena's share yourself")
    log.info("%s: %s B of the %s B arena budget set aside for %s (%s B of static RAM) and the arena's margin "
             "beside it; the search's arena budget is %s B", profile.id, f"{budget - low:,}", f"{budget:,}", what,
             f"{ram:,}", f"{low:,}")
    return replace(profile, front_end_reserve_bytes=int(profile.front_end_reserve_bytes) + budget - low)


def reserve_text(*, arena_budget: int, reserve: int) -> str:
    """What a reserve leaves the arena, in the words `run` and `space` print beside the arena budget."""
    return (f"{reserve:,} B of the board's {arena_budget + reserve:,} B set aside for the front end and the arena's "
            "margin beside it")

"""Putting the image embeddings into the text sequence, and the position ids that go with them.

The prompt marks the image with three ids, `boi, placeholder, eoi`; the tower's output
(boi, the image tokens, eoi) replaces them. Position ids are not renumbered: boi keeps
its id b, every image token shares b+1, eoi gets b+2, and later tokens keep theirs, so
positions count the image as three slots whatever its size (the next generated token
gets the prompt's id length, not the spliced length).
"""

from __future__ import annotations

import torch


def splice_image(
    embeds: torch.Tensor, input_ids: torch.Tensor, position_ids: torch.Tensor, image: torch.Tensor, boi_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeds, position_ids) with each row's `boi, placeholder, eoi` replaced by that row's image embeddings.

    `embeds` (batch, L, H), `input_ids`/`position_ids` (batch, L), `image` (batch, n, H) → (batch, L + n - 3, H)
    and (batch, L + n - 3). Every row must hold exactly one boi.
    """
    rows, row_positions = [], []
    image_tokens = image.shape[1] - 2
    for row in range(embeds.shape[0]):
        marks = (input_ids[row] == boi_id).nonzero().flatten().tolist()
        if len(marks) != 1 or marks[0] + 2 >= input_ids.shape[1]:
            raise ValueError(f"row {row} must hold exactly one boi, placeholder, eoi triple (found boi at {marks})")
        b = marks[0]
        positions = position_ids[row]
        rows.append(torch.cat((embeds[row, :b], image[row].to(embeds.dtype), embeds[row, b + 3 :])))
        row_positions.append(torch.cat((positions[: b + 1], positions[b + 1].expand(image_tokens), positions[b + 2 :])))
    return torch.stack(rows), torch.stack(row_positions)

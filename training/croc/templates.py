"""Named text templates of Croc samples (``data.template``), as the released recipe writes them.

A sample is a list of turns ``(role, text)``, role ``human`` or ``gpt``; a template renders it into
:class:`~regionset.training.croc.sequence.Segment` s whose concatenated text is the released string and whose
supervised segments are exactly what the released code supervises:

- ``v1`` (Vicuna v1, Croc stages 1.5 and 2)::

      <system> USER: <human> ASSISTANT: <gpt></s>USER: <human> ASSISTANT: <gpt></s>

  supervised: each ``<gpt>`` and its ``</s>`` (the EOS id); everything up to and including
  ``"ASSISTANT: "`` is -100.
- ``plain`` (LLaVA's stage-1 template, Croc stage 1)::

      <image><gpt>\\n

  the instruction is dropped (only the image is kept, as released); supervised: ``<gpt>\\n``, no EOS.
- ``custom`` (default): the layout of the ``captions``/``conversations`` fields (see there).
"""

from __future__ import annotations

from typing import Literal

from regionset.training.croc.sequence import IMAGE_PLACEHOLDER, Segment

TemplateName = Literal["custom", "v1", "plain"]
TEMPLATES = ("custom", "v1", "plain")

V1_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the user's questions.")
V1_USER, V1_ASSISTANT, V1_SEP = "USER: ", "ASSISTANT: ", " "
PLAIN_SEP = "\n"
HUMAN, GPT = ("human", "user"), ("gpt", "assistant")


def render(template: TemplateName, turns: list[tuple[str, str]]) -> list[Segment]:
    """Segments of one sample under a named template.

    Args:
        template: ``v1`` or ``plain`` (``custom`` is rendered by the source's own fields).
        turns: ``(role, text)`` in order; roles ``human``/``user`` and ``gpt``/``assistant``.

    Returns:
        The segments; ``[]`` when the sample does not fit the template (``plain`` needs exactly one
        human turn holding the image, then one reply), so that the caller skips it.
    """
    if template == "v1":
        segments = [Segment(V1_SYSTEM + V1_SEP)]
        for role, text in turns:
            if role in HUMAN:
                segments.append(Segment(V1_USER + text + V1_SEP))
            elif role in GPT:
                segments += [Segment(V1_ASSISTANT), Segment(text, supervised=True)]
        return segments
    if template == "plain":
        roles = [role for role, _ in turns]
        if len(turns) != 2 or roles[0] not in HUMAN or roles[1] not in GPT or IMAGE_PLACEHOLDER not in turns[0][1]:
            return []
        return [Segment(IMAGE_PLACEHOLDER), Segment(turns[1][1] + PLAIN_SEP, supervised=True, eos=False)]
    raise ValueError(f"croc.data.template: expected one of {list(TEMPLATES)}, got {template!r}")

"""The ``transforms`` and ``image`` options of :class:`gpufeed.Loader`, turned into server flags.

``transforms={"image": {"kind": "train", "size": 224, "scale": (0.08, 1.0), "layout": "CHW"}}``
is the JavaScript ``transforms`` option (snake_case keys such as ``shrink_on_load`` are accepted);
``image="image=train:224:chw"`` (or a list of such) is the CLI's ``--image`` spec. Values are
checked by the server, with errors naming the option (README "Images").
"""
from __future__ import annotations
import json
from typing import Any, List, Mapping, Optional, Sequence, Union
from .errors import INVALID_OPTION, GpufeedError


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    return v


def transform_flags(transforms: Optional[Mapping[str, Any]], image: Optional[Union[str, Sequence[str]]]) -> List[str]:
    flags: List[str] = []
    if transforms is not None:
        if not isinstance(transforms, Mapping) or not all(isinstance(k, str) and isinstance(v, Mapping) for k, v in transforms.items()):
            raise GpufeedError(INVALID_OPTION, "option transforms: must be a dict mapping a column to its transform dict, e.g. {'image': {'kind': 'train', 'size': 224}}", {"option": "transforms"})
        plain = {col: {_camel(k): _plain(v) for k, v in t.items()} for col, t in transforms.items()}
        flags.extend(["--transforms", json.dumps(plain, separators=(",", ":"))])
    if image is not None:
        specs = [image] if isinstance(image, str) else list(image)
        if not specs or not all(isinstance(s, str) and s for s in specs):
            raise GpufeedError(INVALID_OPTION, "option image: must be a spec like 'image=train:224:chw' or a list of them", {"option": "image"})
        for s in specs:
            flags.extend(["--image", s])
    return flags

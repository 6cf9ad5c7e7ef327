"""Compressed dense representations: codecs with one contract, spec strings, two-stage search.

``parse_spec("pca192+fp8").fit(x)``; ``codec.encode(x) -> codes``; ``codec.topk(q, codes, k)``;
:class:`~heron.codecs.search.TwoStageSearcher` adds rescoring from a memory-mapped float file.
"""

from heron.codecs.base import Codec, load_codec
from heron.codecs.spec import VALID_CODECS, VALID_TRANSFORMS, parse_spec

__all__ = ["VALID_CODECS", "VALID_TRANSFORMS", "Codec", "load_codec", "parse_spec"]

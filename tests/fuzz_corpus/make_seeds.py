#!/usr/bin/env python3
"""Writes the hand-made safetensors seed corpus (tests/fuzz_corpus/safetensors/): a few valid
files (every dtype retort loads, zero-size tensors, metadata, padding) and one file per defect
class. Standard library only. Files the fuzzer found are added beside these as crash-*."""
import json, os, struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")


def st(header, data=b"", raw_header=None, length=None):
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


f16 = struct.pack("<6H", 0x3C00, 0xC000, 0x0001, 0x03FF, 0x7C00, 0x7E00)  # 1, -2, min/max subnormal, inf, nan
seeds = {
    "valid_f32.safetensors": st({"w": entry("F32", [2], 0, 8)}, struct.pack("<2f", 1.0, -2.0)),
    "valid_every_dtype.safetensors": st(
        {"__metadata__": {"format": "pt"}, "a": entry("F16", [2, 3], 0, 12), "b": entry("BF16", [1], 12, 14),
         "c": entry("F64", [1], 14, 22), "d": entry("I64", [], 22, 30), "e": entry("U8", [2], 30, 32),
         "z": entry("F32", [0, 4], 32, 32)},
        f16 + struct.pack("<H", 0x3F80) + struct.pack("<d", 0.5) + struct.pack("<q", 7) + b"\x01\x02"),
    "valid_empty_header.safetensors": st({}),
    "valid_padded.safetensors": st(None, struct.pack("<f", 3.0),
                                   raw_header=b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}        '),
    "bad_short.safetensors": b"\x05\x00",
    "bad_header_len.safetensors": st({}, length=1 << 40),
    "bad_json.safetensors": st(None, raw_header=b'{"x": 1,, }'),
    "bad_not_object.safetensors": st([1, 2]),
    "bad_dtype.safetensors": st({"x": entry("I32", [1], 0, 4)}, b"\x00" * 4),
    "bad_negative_dim.safetensors": st({"x": entry("F32", [-2], 0, 8)}, b"\x00" * 8),
    "bad_float_dim.safetensors": st({"x": entry("F32", [2.0], 0, 8)}, b"\x00" * 8),
    "bad_overflow_shape.safetensors": st({"x": entry("F32", [4294967296, 4294967296], 0, 8)}, b"\x00" * 8),
    "bad_size_mismatch.safetensors": st({"x": entry("F32", [3], 0, 8)}, b"\x00" * 8),
    "bad_past_end.safetensors": st({"x": entry("F32", [2], 4, 12)}, b"\x00" * 8),
    "bad_overlap.safetensors": st({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}, b"\x00" * 12),
    "bad_hole.safetensors": st({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}, b"\x00" * 12),
    "bad_trailing.safetensors": st({"a": entry("F32", [1], 0, 4)}, b"\x00" * 8),
    "bad_duplicate.safetensors": st(None, b"ab", raw_header=b'{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                                            b'"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'),
    "bad_metadata.safetensors": st({"__metadata__": {"k": 1}}),
    "bad_nested_shape.safetensors": st(None, raw_header=b'{"x":{"dtype":"F32","shape":' + b"[" * 200 + b"]" * 200 +
                                       b',"data_offsets":[0,0]}}'),
}

os.makedirs(HERE, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {HERE}")

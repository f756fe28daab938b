"""A fast DICOM header scanner: the few attributes the catalog needs, from the first bytes of a file.

pydicom builds a full dataset in Python (about 1.5 ms a header); the disk is far faster. This
scanner reads the first 16 KiB (more only when the wanted tags lie further), walks the elements
without building anything, and stops at the last wanted tag or at the pixel data. It handles the
128-byte preamble with ``DICM``, explicit and implicit VR little endian and explicit VR big
endian, defined- and undefined-length sequences and items, and text in ASCII, ISO_IR 100 and
ISO_IR 192.

It never guesses: a deflated or unknown transfer syntax, a file without the ``DICM`` marker, a
character set it does not decode, or anything malformed returns ``None``, and the caller falls
back to pydicom. Every value it does return equals pydicom's (tested on every file pydicom
ships).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = ["WANTED_TAGS", "scan_header"]

# keyword → (group, element), in tag order; text VRs (UI, CS, LO, SH, DA, AS, DS, IS) except the
# US ones in _BINARY_US
WANTED_TAGS: dict[str, tuple[int, int]] = {
    "SpecificCharacterSet": (0x0008, 0x0005),
    "ImageType": (0x0008, 0x0008),
    "SOPClassUID": (0x0008, 0x0016),
    "SOPInstanceUID": (0x0008, 0x0018),
    "StudyDate": (0x0008, 0x0020),
    "Modality": (0x0008, 0x0060),
    "Manufacturer": (0x0008, 0x0070),
    "SeriesDescription": (0x0008, 0x103E),
    "ManufacturerModelName": (0x0008, 0x1090),
    "PatientName": (0x0010, 0x0010),
    "PatientID": (0x0010, 0x0020),
    "PatientBirthDate": (0x0010, 0x0030),
    "PatientSex": (0x0010, 0x0040),
    "PatientAge": (0x0010, 0x1010),
    "ContrastBolusAgent": (0x0018, 0x0010),
    "BodyPartExamined": (0x0018, 0x0015),
    "ScanningSequence": (0x0018, 0x0020),
    "SequenceName": (0x0018, 0x0024),
    "SliceThickness": (0x0018, 0x0050),
    "KVP": (0x0018, 0x0060),
    "MagneticFieldStrength": (0x0018, 0x0087),
    "SoftwareVersions": (0x0018, 0x1020),
    "ProtocolName": (0x0018, 0x1030),
    "ConvolutionKernel": (0x0018, 0x1210),
    "StudyInstanceUID": (0x0020, 0x000D),
    "SeriesInstanceUID": (0x0020, 0x000E),
    "InstanceNumber": (0x0020, 0x0013),
    "ImagePositionPatient": (0x0020, 0x0032),
    "ImageOrientationPatient": (0x0020, 0x0037),
    "Rows": (0x0028, 0x0010),
    "Columns": (0x0028, 0x0011),
    "PixelSpacing": (0x0028, 0x0030),
}
_BINARY_US = {"Rows", "Columns"}
_BY_TAG = {(group << 16) | element: keyword for keyword, (group, element) in WANTED_TAGS.items()}
_LAST_TAG = max(_BY_TAG)
_PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_IMPLICIT, _EXPLICIT_LE, _EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"
_DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
_CHUNK = 16 * 1024
_MAX_READ = 4 * 1024 * 1024
_CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


class _Undecided(Exception):
    """The fast path cannot decide; pydicom must read this file."""


class _NeedMore(Exception):
    """The wanted tags lie beyond the bytes read so far."""


_HEAD = {True: struct.Struct("<HH2sH"), False: struct.Struct(">HH2sH")}
_IMPLICIT_HEAD = struct.Struct("<HHI")
_LONG = {True: struct.Struct("<I"), False: struct.Struct(">I")}


_VRS = b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
_VR_HEADER = {vr: 12 if vr in _LONG_VRS else 8 for vr in _VRS.split(b" ")}
"""Every VR of PS3.5 and its element header length in explicit VR; any other two bytes are not ours."""
_LAST_GROUP = _LAST_TAG >> 16
_HEAD_LE = struct.Struct("<HH2sH").unpack_from
_U32_LE = struct.Struct("<I").unpack_from


def _walk_explicit_le(data: bytes, offset: int, *, found: dict[str, bytes], complete: bool) -> None:
    """:func:`_walk` for explicit VR little endian, the common case, with the least work per element.

    A private (odd) group holds nothing wanted, so its elements are only stepped over.
    """
    size = len(data)
    by_tag = _BY_TAG
    try:
        while True:
            group, element, vr, length = _HEAD_LE(data, offset)
            header = _VR_HEADER.get(vr)
            if header is None:
                raise _Undecided  # not a VR: out of step, or not explicit VR after all
            if header == 12:
                (length,) = _U32_LE(data, offset + 8)
            if group & 1 and length != 0xFFFFFFFF:
                if group > _LAST_GROUP:
                    return
                offset += header + length
                continue
            tag = (group << 16) | element
            if tag > _LAST_TAG:  # the pixel data's tag lies beyond too
                return
            start = offset + header
            if length == 0xFFFFFFFF:
                if vr != b"SQ" and vr != b"UN":
                    raise _Undecided  # undefined length outside a sequence (encapsulated data): not ours
                offset = _skip_undefined_sequence(data, start, u16="<H", u32="<I", implicit=False, little=True)
                continue
            offset = start + length
            keyword = by_tag.get(tag)
            if keyword is not None:
                if offset > size:
                    raise _Undecided if complete else _NeedMore
                found[keyword] = data[start:offset]
    except struct.error:
        if offset == size and complete:
            return
        raise (_Undecided if complete else _NeedMore) from None


def _walk(data: bytes, offset: int, *, little: bool, implicit: bool, found: dict[str, bytes], complete: bool) -> None:
    """Collect wanted top-level elements from ``offset`` until past the last wanted tag.

    ``complete`` says ``data`` is the whole file: its clean end ends the walk, a cut element is undecided.
    """
    u16, u32 = ("<H", "<I") if little else (">H", ">I")
    head, long_length = _HEAD[little], _LONG[little].unpack_from
    size = len(data)
    while True:
        if offset == size and complete:
            return
        if offset + 8 > size:
            raise _Undecided if complete else _NeedMore
        if implicit:
            group, element, length = _IMPLICIT_HEAD.unpack_from(data, offset)
            header = 8
            is_sequence = length == 0xFFFFFFFF
        else:
            group, element, vr, length = head.unpack_from(data, offset)
            if vr in _LONG_VRS:
                if offset + 12 > size:
                    raise _Undecided if complete else _NeedMore
                (length,) = long_length(data, offset + 8)
                header = 12
            elif not (vr.isalpha() and vr.isupper()):
                raise _Undecided
            else:
                header = 8
            is_sequence = vr == b"SQ" or (vr == b"UN" and length == 0xFFFFFFFF)
        tag = (group << 16) | element
        if tag > _LAST_TAG or tag == _PIXEL_DATA:
            return
        start = offset + header
        if length == 0xFFFFFFFF:
            if not is_sequence:
                raise _Undecided  # undefined length outside a sequence (encapsulated data): not ours
            offset = _skip_undefined_sequence(data, start, u16=u16, u32=u32, implicit=implicit, little=little)
            continue
        end = start + length
        if tag in _BY_TAG:
            if end > size:
                raise _Undecided if complete else _NeedMore
            found[_BY_TAG[tag]] = data[start:end]
        if end > size and complete:
            raise _Undecided
        offset = end


def _skip_undefined_sequence(data: bytes, offset: int, *, u16: str, u32: str, implicit: bool, little: bool) -> int:
    """Return the offset just past an undefined-length sequence that starts at ``offset``."""
    size = len(data)
    depth = 1
    while depth:
        if offset + 8 > size:
            raise _NeedMore
        group, element = struct.unpack_from(u16 + u16[-1], data, offset)
        tag = (group << 16) | element
        (length,) = struct.unpack_from(u32, data, offset + 4)
        if tag == _SEQUENCE_END:
            depth -= 1
            offset += 8
        elif tag == _ITEM_END:
            offset += 8
        elif tag == _ITEM:
            offset += 8 if length == 0xFFFFFFFF else 8 + length
        else:
            if implicit:
                header = 8
                nested = length == 0xFFFFFFFF
            else:
                vr = data[offset + 4 : offset + 6]
                if vr in _LONG_VRS:
                    (length,) = struct.unpack_from(u32, data, offset + 8)
                    header = 12
                elif vr.isalpha() and vr.isupper():
                    (length,) = struct.unpack_from(u16, data, offset + 6)
                    header = 8
                else:
                    raise _Undecided
                nested = length == 0xFFFFFFFF
            if nested:
                depth += 1
                offset += header
            else:
                offset += header + length
        if offset > _MAX_READ:
            raise _Undecided
    return offset


def _meta(data: bytes) -> tuple[int, str]:
    """Parse group 0002 (explicit VR little endian); return the dataset offset and transfer syntax."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _Undecided
    offset = 132
    syntax = None
    while offset + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            break
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, offset + 8)
            start = offset + 12
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            start = offset + 8
        if element == 0x0010:
            syntax = data[start : start + length].rstrip(b"\0 ").decode("ascii", errors="strict")
        offset = start + length
    if syntax is None:
        raise _Undecided
    return offset, syntax


def scan_header(path: Path | str) -> dict[str, str | None] | None:
    """Return the wanted attributes of one DICOM file, or ``None`` when pydicom must decide.

    Values are stripped text (multi-valued elements keep their backslashes); an absent or empty
    element is ``None``.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except (OSError, ValueError):
        return None
    try:
        total = os.fstat(descriptor).st_size
        data = os.read(descriptor, _CHUNK)
        while True:
            try:
                offset, syntax = _meta(data)
                if syntax in _DEFLATED or not syntax.startswith("1.2.840.10008.1.2"):
                    return None  # deflated, private or unknown transfer syntax
                found: dict[str, bytes] = {}
                complete = len(data) >= total
                if syntax == _EXPLICIT_LE:
                    _walk_explicit_le(data, offset, found=found, complete=complete)
                else:
                    _walk(
                        data,
                        offset,
                        little=syntax != _EXPLICIT_BE,
                        implicit=syntax == _IMPLICIT,
                        found=found,
                        complete=complete,
                    )
                break
            except _NeedMore:
                if len(data) >= _MAX_READ:
                    return None
                more = os.read(descriptor, max(len(data), _CHUNK))
                if not more:
                    return None
                data += more
    except (OSError, _Undecided, struct.error, UnicodeDecodeError, ValueError):
        return None
    finally:
        os.close(descriptor)
    return _values(found, little=syntax != _EXPLICIT_BE)


def _values(found: dict[str, bytes], *, little: bool) -> dict[str, str | None] | None:
    """The text of each wanted element found (``None`` for the others), or ``None`` when pydicom must decide."""
    raw_charset = found.get("SpecificCharacterSet", b"")
    if not raw_charset.isascii():
        return None
    encoding = _CHARSETS.get(raw_charset.decode("ascii").strip(" \0"))
    values: dict[str, str | None] = dict.fromkeys(WANTED_TAGS)
    for keyword, raw in found.items():
        if keyword in _BINARY_US:
            if len(raw) != 2:
                return None  # not one US value: let pydicom decide
            values[keyword] = str(struct.unpack("<H" if little else ">H", raw)[0])
            continue
        if encoding is None and not raw.isascii():
            return None  # a character set this scanner does not decode
        try:
            values[keyword] = raw.decode(encoding or "ascii").strip(" \0") or None
        except UnicodeDecodeError:
            return None
    return values

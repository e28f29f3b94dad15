"""Raw PS-OCT formats: spectral tiles (16-bit NIfTI, packed 12-bit), complex tiles and the
calibration assets the reconstruction needs (spec 3.2-3.4).

Sample order of a spectral tile, slowest to fastest, is (B-line, camera, A-line, spectral pixel),
i.e. C order ``(Bline, 2, Aline, L)``; camera 2's spectrum is stored reversed. Readers return
both cameras in increasing pixel order (camera 2 through a reversed view, no copy); writers take
that order and reverse camera 2 themselves. The NIfTI header describes the same bytes in NIfTI's
Fortran order, ``(L, Aline, 2, Bline)``, so nibabel reads the files as they are.

Complex tiles hold ``float32 (4*Aline, Bline, Depth)`` in NIfTI (Fortran) order: along the first
axis the blocks Re J1, Im J1, Re J2, Im J2. Depth is stored reversed, as the instrument writes
it (spec 4.1 step 9); :func:`read_complex_tile` undoes that, so depth index 0 is the shallowest
sample (FFT bin ``autocorr_cut``) and :func:`write_complex_tile` re-reverses. The imaginary part is
stored as computed by a forward FFT with the ``exp(-i...)`` kernel (numpy and MATLAB agree), not
negated as the original Python port did; negating it flips the sign of the orientation.

Every reader checks the file against the geometry the config expects and raises
:class:`RawTileError` naming the file, what was expected and what was found. Large tiles are
memory-mapped; nothing is copied unless the format forces it (12-bit unpacking, complex numbers).
Writers are atomic; the ``*_bytes`` encoders return the whole file image for live writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import scipy.io

from opticstream_napari.io.atomic import atomic_path
from opticstream_napari.processing.psoct.calibration import Calibration

NIFTI_HEADER_BYTES = 352
_SIZEOF_HDR = 348
_MAX_12BIT = 4095


class RawTileError(ValueError):
    """A raw file that does not match the expected geometry or format."""

    def __init__(self, path: str | Path, what: str, expected: object, found: object) -> None:
        self.path = Path(path)
        self.what = what
        self.expected = expected
        self.found = found
        super().__init__(f"{self.path}: {what}: expected {expected}, found {found}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.path, self.what, self.expected, self.found)  # crosses to and from worker processes


@dataclass(frozen=True, slots=True)
class TileGeometry:
    """What one tile of a mosaic bucket holds: A-lines (x), B-lines (y), spectral length, depth."""

    alines: int
    blines: int
    spectral_length: int
    depth: int

    def __post_init__(self) -> None:
        if min(self.alines, self.blines, self.depth) < 1 or self.spectral_length < 2:
            raise ValueError(f"a tile needs positive sizes, found {self}")
        if self.spectral_length % 2:
            raise ValueError(f"the spectral length must be even, found {self.spectral_length}")

    @property
    def spectral_shape(self) -> tuple[int, int, int, int]:
        """C-order sample shape of a spectral tile."""
        return (self.blines, 2, self.alines, self.spectral_length)

    @property
    def spectral_samples(self) -> int:
        return self.blines * 2 * self.alines * self.spectral_length

    @property
    def complex_shape(self) -> tuple[int, int, int]:
        """NIfTI shape of a complex tile."""
        return (4 * self.alines, self.blines, self.depth)


def full_depth(spectral_length: int, autocorr_cut: int) -> int:
    """Depth samples left after keeping FFT bins ``0..L/2-1`` and dropping ``autocorr_cut``."""
    depth = spectral_length // 2 - autocorr_cut
    if depth < 1:
        raise ValueError(f"autocorr_cut {autocorr_cut} leaves no depth of a length-{spectral_length} FFT")
    return depth


# --------------------------------------------------------------------------- NIfTI headers


def _nifti_header(shape: tuple[int, ...], dtype: type, zooms_mm: tuple[float, ...]) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_zooms(zooms_mm)
    header.set_xyzt_units("mm")
    header.set_data_offset(NIFTI_HEADER_BYTES)
    block = header.binaryblock
    return block + b"\x00" * (NIFTI_HEADER_BYTES - len(block))


def _read_nifti_header(path: Path) -> nib.Nifti1Header:
    """Parse and sanity-check the header; byte order is taken from ``sizeof_hdr``."""
    size = path.stat().st_size
    if size < NIFTI_HEADER_BYTES:
        raise RawTileError(path, "file size", f">= {NIFTI_HEADER_BYTES} bytes (a NIfTI-1 header)", size)
    with open(path, "rb") as handle:
        block = handle.read(_SIZEOF_HDR)
    little = int(np.frombuffer(block[:4], "<i4")[0])
    big = int(np.frombuffer(block[:4], ">i4")[0])
    if _SIZEOF_HDR not in (little, big):
        raise RawTileError(path, "NIfTI sizeof_hdr", _SIZEOF_HDR, little)
    endianness = "<" if little == _SIZEOF_HDR else ">"
    header = nib.Nifti1Header(binaryblock=block, endianness=endianness, check=False)
    magic = bytes(header["magic"]).rstrip(b"\x00")
    if magic != b"n+1":
        raise RawTileError(path, "NIfTI magic", "b'n+1' (single file)", magic)
    return header


def _check_nifti(path: Path, header: nib.Nifti1Header, shape: tuple[int, ...], dtype: type) -> int:
    """Validate shape, type, scaling and size; return the data offset."""
    found_shape = tuple(int(n) for n in header.get_data_shape())
    if found_shape != shape:
        raise RawTileError(path, "NIfTI dims", shape, found_shape)
    found_dtype = header.get_data_dtype()
    if found_dtype.newbyteorder("=") != np.dtype(dtype):
        raise RawTileError(path, "NIfTI datatype", np.dtype(dtype).name, found_dtype.name)
    slope, inter = header.get_slope_inter()
    if slope not in (None, 1.0) or inter not in (None, 0.0):
        raise RawTileError(path, "NIfTI scaling (scl_slope, scl_inter)", "(1, 0) or unset", (slope, inter))
    offset = int(header.get_data_offset())
    expected = offset + int(np.prod(shape)) * found_dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        problem = "truncated file" if size < expected else "oversized file"
        raise RawTileError(path, f"file size ({problem})", f"{expected} bytes", f"{size} bytes")
    return offset


# --------------------------------------------------------------------------- spectral tiles


@dataclass(frozen=True, slots=True, eq=False)
class SpectralTile:
    """A spectral tile as stored: ``stored`` is ``(Bline, 2, Aline, L)``, camera 2 reversed."""

    path: Path
    stored: np.ndarray

    def channel(self, camera: Literal[1, 2]) -> np.ndarray:
        """``(Bline, Aline, L)`` of one camera in increasing pixel order; a view, not a copy."""
        if camera not in (1, 2):
            raise ValueError(f"camera must be 1 or 2, found {camera}")
        data = self.stored[:, camera - 1]
        return data[..., ::-1] if camera == 2 else data

    def to_array(self) -> np.ndarray:
        """``(Bline, 2, Aline, L)`` with both cameras in increasing pixel order (a copy)."""
        return np.stack([self.channel(1), self.channel(2)], axis=1)


def _fill_stored(dest: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Copy increasing-order samples into ``dest`` with camera 2 reversed, as the instrument writes."""
    if data.ndim != 4 or data.shape[1] != 2:
        raise ValueError(f"spectral data must be (Bline, 2, Aline, L), found shape {data.shape}")
    dest[:, 0] = data[:, 0]
    dest[:, 1] = data[:, 1, :, ::-1]
    return dest


def _check_uint12(data: np.ndarray) -> None:
    if data.dtype.kind not in "ui" or data.min(initial=0) < 0 or data.max(initial=0) > _MAX_12BIT:
        raise ValueError(
            f"12-bit packing needs integers in [0, {_MAX_12BIT}], found {data.dtype} in "
            f"[{data.min(initial=0)}, {data.max(initial=0)}]"
        )


def spectral_nifti_bytes(data: np.ndarray, voxel_um: tuple[float, float] = (10.0, 10.0)) -> np.ndarray:
    """The whole ``.nii`` file of a spectral tile given in increasing pixel order, as uint8."""
    if data.dtype != np.uint16:
        raise ValueError(f"spectral samples must be uint16, found {data.dtype}")
    blines, _, alines, length = data.shape
    header = _nifti_header(
        (length, alines, 2, blines), np.uint16, (1.0, voxel_um[0] / 1000, 1.0, voxel_um[1] / 1000)
    )
    out = np.empty(NIFTI_HEADER_BYTES + data.size * 2, dtype=np.uint8)
    out[:NIFTI_HEADER_BYTES] = np.frombuffer(header, np.uint8)
    _fill_stored(out[NIFTI_HEADER_BYTES:].view("<u2").reshape(data.shape), data)
    return out


def pack_12bit(samples: np.ndarray) -> np.ndarray:
    """Two 12-bit samples into 3 bytes: b0 = s1 low 8, b1 = s1 high 4 | s2 low 4 << 4, b2 = s2 >> 4."""
    flat = np.ascontiguousarray(samples).reshape(-1)
    if flat.size % 2:
        raise ValueError(f"12-bit packing needs an even number of samples, found {flat.size}")
    _check_uint12(flat)
    s1 = flat[0::2].astype(np.uint16)
    s2 = flat[1::2].astype(np.uint16)
    packed = np.empty((flat.size // 2, 3), dtype=np.uint8)
    packed[:, 0] = s1 & 0xFF
    packed[:, 1] = (s1 >> 8) | ((s2 & 0x0F) << 4)
    packed[:, 2] = s2 >> 4
    return packed.reshape(-1)


def unpack_12bit(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_12bit`: sample1 = b0 + (b1 & 0x0F)*256, sample2 = (b1 >> 4) + b2*16."""
    triples = np.asarray(packed, dtype=np.uint8).reshape(-1, 3)
    out = np.empty((triples.shape[0], 2), dtype=np.uint16)
    b1 = triples[:, 1].astype(np.uint16)
    out[:, 0] = triples[:, 0] + ((b1 & 0x0F) << 8)
    out[:, 1] = (b1 >> 4) + (triples[:, 2].astype(np.uint16) << 4)
    return out.reshape(-1)


def spectral_raw12_bytes(data: np.ndarray) -> np.ndarray:
    """The whole headerless ``.raw`` file of a spectral tile given in increasing pixel order."""
    _check_uint12(data)
    return pack_12bit(_fill_stored(np.empty(data.shape, dtype=np.uint16), data))


def write_spectral_tile(
    path: str | Path,
    data: np.ndarray,
    *,
    packed_12bit: bool = False,
    voxel_um: tuple[float, float] = (10.0, 10.0),
) -> Path:
    """Write ``(Bline, 2, Aline, L)`` uint16 samples (increasing pixel order) atomically."""
    image = spectral_raw12_bytes(data) if packed_12bit else spectral_nifti_bytes(data, voxel_um)
    return _write_atomic(Path(path), image)


def read_spectral_nifti(path: str | Path, geometry: TileGeometry) -> SpectralTile:
    """Memory-map a 16-bit spectral ``.nii`` after checking its header and size."""
    path = Path(path)
    header = _read_nifti_header(path)
    b, c, a, n = geometry.spectral_shape
    offset = _check_nifti(path, header, (n, a, c, b), np.uint16)
    dtype = header.get_data_dtype()
    stored = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=geometry.spectral_shape)
    return SpectralTile(path, stored)


def read_spectral_raw12(path: str | Path, geometry: TileGeometry) -> SpectralTile:
    """Unpack a headerless 12-bit ``.raw`` tile (vectorised, read through a memory map)."""
    path = Path(path)
    expected = geometry.spectral_samples * 3 // 2
    size = path.stat().st_size
    if size != expected:
        problem = "truncated file" if size < expected else "oversized file"
        raise RawTileError(path, f"12-bit file size ({problem})", f"{expected} bytes", f"{size} bytes")
    packed = np.memmap(path, dtype=np.uint8, mode="r")
    return SpectralTile(path, unpack_12bit(packed).reshape(geometry.spectral_shape))


def read_spectral_tile(path: str | Path, geometry: TileGeometry) -> SpectralTile:
    """Read a spectral tile, choosing the format from the suffix (``.nii`` or ``.raw``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".nii":
        return read_spectral_nifti(path, geometry)
    if suffix == ".raw":
        return read_spectral_raw12(path, geometry)
    raise RawTileError(path, "spectral file suffix", "'.nii' or '.raw'", repr(path.suffix))


# --------------------------------------------------------------------------- complex tiles


@dataclass(frozen=True, slots=True, eq=False)
class ComplexTile:
    """J1 and J2 as ``complex64 (Aline, Bline, Depth)``, depth index 0 the shallowest."""

    path: Path
    j1: np.ndarray
    j2: np.ndarray


def complex_nifti_bytes(
    j1: np.ndarray, j2: np.ndarray, voxel_um: tuple[float, float, float] = (10.0, 10.0, 2.5)
) -> np.ndarray:
    """The whole ``_processed.nii`` file: blocks Re J1, Im J1, Re J2, Im J2, depth reversed."""
    if j1.shape != j2.shape or j1.ndim != 3:
        raise ValueError(f"J1 and J2 must share an (Aline, Bline, Depth) shape, found {j1.shape}, {j2.shape}")
    alines, blines, depth = j1.shape
    header = _nifti_header((4 * alines, blines, depth), np.float32, tuple(v / 1000 for v in voxel_um))
    out = np.empty(NIFTI_HEADER_BYTES + 16 * j1.size, dtype=np.uint8)
    out[:NIFTI_HEADER_BYTES] = np.frombuffer(header, np.uint8)
    # Fortran order on disk: a C-order (Depth, Bline, 4*Aline) array has the same bytes.
    body = out[NIFTI_HEADER_BYTES:].view("<f4").reshape(depth, blines, 4 * alines)
    for block, part in enumerate((j1.real, j1.imag, j2.real, j2.imag)):
        body[:, :, block * alines : (block + 1) * alines] = part[:, :, ::-1].T
    return out


def write_complex_tile(
    path: str | Path,
    j1: np.ndarray,
    j2: np.ndarray,
    voxel_um: tuple[float, float, float] = (10.0, 10.0, 2.5),
) -> Path:
    """Write J1/J2 ``(Aline, Bline, Depth)`` (depth increasing) as a complex tile, atomically."""
    return _write_atomic(Path(path), complex_nifti_bytes(j1, j2, voxel_um))


def read_complex_tile(path: str | Path, geometry: TileGeometry) -> ComplexTile:
    """Read a complex tile; NaN anywhere is an error because it poisons every derived map."""
    path = Path(path)
    header = _read_nifti_header(path)
    offset = _check_nifti(path, header, geometry.complex_shape, np.float32)
    data = np.memmap(
        path, dtype=header.get_data_dtype(), mode="r", offset=offset,
        shape=geometry.complex_shape, order="F",
    )
    nan_count = int(np.count_nonzero(np.isnan(data)))
    if nan_count:
        raise RawTileError(path, "complex samples", "finite values", f"{nan_count} NaN")
    a = geometry.alines
    flipped = data[:, :, ::-1]
    j1 = (flipped[:a] + 1j * flipped[a : 2 * a]).astype(np.complex64)
    j2 = (flipped[2 * a : 3 * a] + 1j * flipped[3 * a :]).astype(np.complex64)
    return ComplexTile(path, j1, j2)


# --------------------------------------------------------------------------- calibration assets


def write_calibration(path: str | Path, mu: np.ndarray, wave_prime: np.ndarray) -> Path:
    """Save ``mu`` and ``wave_prime`` as a MATLAB ``.mat`` file, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        scipy.io.savemat(
            tmp, {"mu": np.asarray(mu, np.float64), "wave_prime": np.asarray(wave_prime, np.float64)},
            appendmat=False,
        )
    return path


def read_calibration(path: str | Path, spectral_length: int) -> Calibration:
    """Load and check ``wave-pixel.mat`` against the spectral length the config expects."""
    path = Path(path)
    try:
        content = scipy.io.loadmat(path, appendmat=False)
    except (ValueError, OSError, TypeError) as error:
        raise RawTileError(path, "calibration file", "a MATLAB .mat file", f"unreadable ({error})") from None
    missing = [key for key in ("mu", "wave_prime") if key not in content]
    if missing:
        raise RawTileError(path, "calibration variables", "mu and wave_prime", f"missing {missing}")
    try:
        return Calibration(content["mu"], content["wave_prime"], spectral_length)
    except ValueError as error:
        raise RawTileError(path, "calibration", "lines that fit the spectral length", str(error)) from None


def write_dispersion(path: str | Path, phase: np.ndarray) -> Path:
    """Save a dispersion phase (radians per k sample) as raw little-endian float64, atomically."""
    return _write_atomic(Path(path), np.asarray(phase, dtype="<f8").reshape(-1).view(np.uint8))


def read_dispersion(path: str | Path, spectral_length: int) -> np.ndarray:
    """Raw float64 phase; its length is the spectral length times the zero-padding factor."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0 or size % (8 * spectral_length):
        raise RawTileError(path, "dispersion file size",
                           f"a non-zero multiple of {8 * spectral_length} bytes ({spectral_length} float64)",
                           f"{size} bytes")
    phase = np.fromfile(path, dtype="<f8")
    if not np.isfinite(phase).all():
        raise RawTileError(path, "dispersion phase", "finite values", "NaN or infinite values")
    return phase


def _write_atomic(path: Path, image: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        image.tofile(tmp)
    return path

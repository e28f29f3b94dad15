"""Ground-truth PS-OCT sample and the forward model from tissue to raw camera counts.

**Sample.** Every property is a continuous, band-limited function of position in µm (sums of
random plane waves), so a tile can be cut at any sub-pixel stage position exactly and
phase correlation has texture at every scale: a tissue region with an irregular soft boundary
in weakly scattering background, a smooth surface topography (depth samples), attenuation,
birefringence Δn (≈2e-4) and an optic-axis orientation θ that crosses the ±90° wrap. A slice
index moves every field slightly along z, so consecutive slices differ a little.

**Jones model** (spec 13), per voxel at depth index z below the observed surface z_s::

    I(z) = 10^(R/10) · exp(-(z - z_s)/ℓ)   for z >= z_s, else 0
    δ(z) = 2π/λ · Δn · (z - z_s) · Δz
    J1 = √I · sin δ · e^{iψ},   J2 = √I · cos δ · e^{i(ψ - 2θ + 2·offset)}

with ψ a random speckle phase and offset = ``processing.phase_offset_deg``. Reconstruction by
spec 4.2 (``φ = arg J1 - arg J2 + 2·offset``, no ``flip_phase``) then returns O3D = θ,
R3D = δ in degrees and a BIREF slope of Δn. The imaginary parts are those of numpy's forward FFT
(kernel ``exp(-2πi·bk/L)``, as MATLAB's ``fft``); the original Python port negated them, which
is the same as ``flip_phase`` and turns θ into -θ. Depth index 0 is FFT bin ``autocorr_cut``.

**Units and scale.** J is in the units the reconstruction produces: an unnormalised forward
FFT of camera counts after k-linearisation. The scale factor is 1, so dBI = 10·log10(|J1|²+|J2|²)
of the simulated J is what a correct reconstruction computes. Tissue reflects about 74 dB at
its surface (AIP ≈ 70 dB over the default window), background about 46 dB, so the default mask
thresholds (60/55 dB) separate them.

**Spectral synthesis** inverts spec 4.1 step by step. Each J profile is placed at FFT bins
``cut + z``, multiplied by the dispersion phase ``e^{+iφ}`` and taken to k as ``2·Re(ifft)``
(the reconstruction multiplies by ``e^{-iφ}``). The uniform-k spectrum is then mapped to camera
pixels by the least-squares inverse of the reconstruction's own linear interpolation (a
tridiagonal normal system), so interpolating back reproduces it; this is exact below about
0.4·Nyquist and the sample is kept that shallow. Two devices make the A-line statistics
invisible to the reconstruction:

* Background removal (mean over A-lines) and DC removal (median over A-lines per k sample)
  would subtract a share of the tissue signal from every A-line of a short B-line. Every A-line
  therefore gets a constant offset (FFT bin 0, which is discarded) of -H or +H, except a central
  pair whose second member is the π-shifted copy of the first: at every k the two middle values
  are ±s and the median is exactly 0. The copy has the same intensity, retardance and
  orientation, so the ground truth samples that column at its partner's position; with an odd
  number of A-lines the central one carries no signal instead (see :class:`MedianGuard`).
* With a dispersion phase, an offset times ``e^{-iφ}`` is no longer confined to bin 0; the
  fringes of every A-line are pre-corrected by exactly the leak its offset will cause.
* Camera 2 is written with its spectrum reversed; the DC spectrum is a Gaussian around 1300 nm.

Counts stay within 12 bits, so the 16-bit ``.nii`` and packed ``.raw`` files hold the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from opticstream_napari.io.psoct_raw import full_depth
from opticstream_napari.processing.psoct.calibration import Calibration

EPS_SINGLE = float(np.finfo(np.float32).eps)
MAX_COUNT = 4095
CENTRE_WAVELENGTH_NM = 1300.0
DB_PER_NEPER = 10 * np.log10(np.e)


def default_calibration(spectral_length: int) -> Calibration:
    """Spec 13's calibration scaled to ``spectral_length``: 9 lines, right camera +3 pixels."""
    left = np.linspace(100.0, 1900.0, 9) * spectral_length / 2048
    mu = np.stack([left, left + 3.0], axis=1)
    return Calibration(mu, np.linspace(1240.0, 1360.0, 9), spectral_length)


def quadratic_dispersion(spectral_length: int, edge_radians: float) -> np.ndarray:
    """Phase per k sample, 0 at the band centre and ``edge_radians`` at both edges."""
    u = np.linspace(-1.0, 1.0, spectral_length)
    return edge_radians * u**2


# --------------------------------------------------------------------------- smooth fields


@dataclass(frozen=True, slots=True, eq=False)
class SmoothField:
    """``Σ a·cos(k·r + φ)``: band-limited, unit variance, exact at any continuous position."""

    wavevectors: np.ndarray
    phases: np.ndarray
    amplitudes: np.ndarray

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        modes: int,
        wavelength_um: tuple[float, float],
        *,
        direction_deg: float | None = None,
        spread_deg: float = 20.0,
        z_wavelength_um: float = 6000.0,
    ) -> SmoothField:
        """Log-uniform wavelengths (multi-scale texture); a direction gives fibre-like stripes."""
        lo, hi = np.log(wavelength_um[0]), np.log(wavelength_um[1])
        k = 2 * np.pi / np.exp(rng.uniform(lo, hi, modes))
        if direction_deg is None:
            angle = rng.uniform(0, np.pi, modes)
        else:
            angle = np.deg2rad(direction_deg + rng.normal(0, spread_deg, modes))
        kz = rng.choice([-1.0, 1.0], modes) * rng.uniform(0.5, 1.5, modes) * 2 * np.pi / z_wavelength_um
        vectors = np.stack([k * np.cos(angle), k * np.sin(angle), kz], axis=1)
        return cls(vectors, rng.uniform(0, 2 * np.pi, modes), np.full(modes, np.sqrt(2.0 / modes)))

    def __call__(self, x_um: np.ndarray, y_um: np.ndarray, z_um: float = 0.0) -> np.ndarray:
        """Values on the grid ``x (nx,) × y (ny,)``, shape ``(nx, ny)``.

        ``cos(a + b) = Re(e^{ia} e^{ib})`` makes a grid one complex matrix product.
        """
        x = np.asarray(x_um, np.float64).reshape(-1)
        y = np.asarray(y_um, np.float64).reshape(-1)
        along_x = np.exp(1j * np.outer(x, self.wavevectors[:, 0]))
        along_y = np.exp(1j * (np.outer(y, self.wavevectors[:, 1]) + z_um * self.wavevectors[:, 2] + self.phases))
        return (along_x @ (along_y * self.amplitudes).T).real


# --------------------------------------------------------------------------- sample


@dataclass(frozen=True, slots=True, eq=False)
class SampleProperties:
    """Sample properties on a grid of positions; all arrays share one shape."""

    tissue: np.ndarray
    reflectivity_db: np.ndarray
    attenuation: np.ndarray
    surface: np.ndarray
    biref: np.ndarray
    theta_deg: np.ndarray

    def __getitem__(self, index: object) -> SampleProperties:
        """The same properties on a sub-grid, e.g. a block of B-lines."""
        return SampleProperties(**{item.name: getattr(self, item.name)[index] for item in fields(self)})


def wrap_orientation(theta_deg: np.ndarray) -> np.ndarray:
    """Axial angles live in [-90°, 90°)."""
    return (np.asarray(theta_deg) + 90.0) % 180.0 - 90.0


class PSOCTSample:
    """The tissue block: a soft-edged tissue region in background, continuous in µm.

    ``attenuation`` is the 1/e intensity length and ``surface`` the depth below zero delay,
    both in depth samples. ``tilt_deg`` views the sample with the beam tilted in the x-z plane:
    the optic axis projects to ``atan2(sin θ, cos θ cos γ)`` and Δn scales by ``1 - sin²γ cos²θ``.
    """

    def __init__(
        self,
        seed: int,
        centre_um: tuple[float, float],
        radius_um: float,
        pixel_um: float,
        *,
        surface_depth: float = 16.0,
        slice_thickness_um: float = 500.0,
    ) -> None:
        rng = np.random.default_rng([seed, 0x5EED])
        px = pixel_um
        self.centre_um = centre_um
        self.radius_um = radius_um
        self.edge_um = px
        self.surface_depth = surface_depth
        self.slice_thickness_um = slice_thickness_um
        self.fibre_deg = float(rng.uniform(0, 180))
        self._boundary = (rng.normal(0, 0.07, 5) / np.sqrt(np.arange(2, 7)), rng.uniform(0, 2 * np.pi, 5))
        self._texture = SmoothField.random(rng, 48, (3 * px, 25 * px))
        self._fibres = SmoothField.random(rng, 24, (3 * px, 8 * px), direction_deg=self.fibre_deg + 90)
        self._background = SmoothField.random(rng, 24, (3 * px, 20 * px))
        self._attenuation = SmoothField.random(rng, 16, (5 * px, 40 * px))
        self._biref = SmoothField.random(rng, 16, (8 * px, 60 * px))
        self._theta = SmoothField.random(rng, 16, (10 * px, 80 * px))
        self._topography = SmoothField.random(rng, 12, (20 * px, 200 * px))

    def tissue(self, x_um: np.ndarray, y_um: np.ndarray, z_um: float) -> np.ndarray:
        """0..1 on the grid ``x × y``: a logistic edge one pixel wide around an irregular outline
        that drifts slowly with z."""
        dx = np.asarray(x_um, np.float64).reshape(-1, 1) - self.centre_um[0]
        dy = np.asarray(y_um, np.float64).reshape(1, -1) - self.centre_um[1]
        angle = np.arctan2(dy, dx)
        amplitudes, phases = self._boundary
        drift = z_um / self.slice_thickness_um
        orders = np.arange(2, 2 + amplitudes.size)
        wobble = np.cos(orders * angle[..., None] + phases + 0.15 * drift) @ amplitudes
        outline = self.radius_um * (1.0 + 0.015 * drift + wobble)
        return 1.0 / (1.0 + np.exp(-(outline - np.hypot(dx, dy)) / self.edge_um))

    def properties(
        self, x_um: np.ndarray, y_um: np.ndarray, slice_id: int = 1, tilt_deg: float = 0.0
    ) -> SampleProperties:
        """Properties on the grid ``x_um (nx,) × y_um (ny,)`` of one slice, viewed at a tilt."""
        x, y = np.asarray(x_um, np.float64).reshape(-1), np.asarray(y_um, np.float64).reshape(-1)
        z = (slice_id - 1) * self.slice_thickness_um
        t = self.tissue(x, y, z)
        tissue_db = 74.0 + 2.8 * np.tanh(0.55 * self._texture(x, y, z) + 0.55 * self._fibres(x, y, z))
        background_db = 46.0 + 1.5 * np.tanh(self._background(x, y, z))
        inverse_length = t / (50.0 * np.exp(0.12 * self._attenuation(x, y, z))) + (1 - t) / 150.0
        radial = (x[:, None] - self.centre_um[0]) / self.radius_um
        surface = self.surface_depth + 2.0 * self._topography(x, y, z) + 1.0 * radial
        theta = 55.0 + 45.0 * radial + 12.0 * self._theta(x, y, z)
        biref = 2e-4 * (1.0 + 0.2 * np.tanh(self._biref(x, y, z))) * t
        gamma = np.deg2rad(tilt_deg)
        theta_rad = np.deg2rad(theta)
        apparent = np.rad2deg(np.arctan2(np.sin(theta_rad), np.cos(theta_rad) * np.cos(gamma)))
        biref = biref * (1.0 - np.sin(gamma) ** 2 * np.cos(theta_rad) ** 2)
        return SampleProperties(
            tissue=t,
            reflectivity_db=background_db + (tissue_db - background_db) * t,
            attenuation=1.0 / inverse_length,
            surface=surface,
            biref=biref,
            theta_deg=wrap_orientation(apparent),
        )


# --------------------------------------------------------------------------- field curvature


@dataclass(frozen=True, slots=True)
class FieldCurvature:
    """Tile-local surface offset in depth samples, ``P = a·x + b·y + c + d·x² + e·y² + f·x·y``
    with x the A-line and y the B-line index (spec 4.9); every tile of a bucket shares it."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    @classmethod
    def random(cls, rng: np.random.Generator, width: int, height: int, span: float = 6.0) -> FieldCurvature:
        """A bowl near the tile centre rising about ``span`` samples to the edges; min over the tile 0."""
        x0, y0 = (width - 1) / 2 * rng.uniform(0.8, 1.2), (height - 1) / 2 * rng.uniform(0.8, 1.2)
        hx, hy = max(width / 2, 1.0), max(height / 2, 1.0)
        d = span * rng.uniform(0.6, 1.0) / hx**2
        e = span * rng.uniform(0.4, 0.8) / hy**2
        f = span * rng.uniform(-0.2, 0.2) / (hx * hy)
        shape = cls(-2 * d * x0 - f * y0, -2 * e * y0 - f * x0, 0.0, d, e, f)
        x, y = np.meshgrid(np.arange(width), np.arange(height), indexing="ij")
        return cls(shape.a, shape.b, -float(shape(x, y).min()), d, e, f)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        return self.a * x + self.b * y + self.c + self.d * x**2 + self.e * y**2 + self.f * x * y

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# --------------------------------------------------------------------------- forward model


def _polar(magnitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """``magnitude·e^{i·phase}`` as complex64 through real sin/cos (vectorised, unlike complex exp)."""
    out = np.empty(magnitude.shape, np.complex64)
    out.real = magnitude * np.cos(phase)
    out.imag = magnitude * np.sin(phase)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class EnfaceTruth:
    """What spec 4.3/4.4 should recover per (x, y): surface index (0-based), AIP/MIP (dB),
    RET and ORI (degrees), BIREF (Δn) and the tissue fraction. ORI is NaN outside tissue."""

    surface: np.ndarray
    aip: np.ndarray
    mip: np.ndarray
    ret: np.ndarray
    ori: np.ndarray
    biref: np.ndarray
    tissue: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass(frozen=True, slots=True)
class ForwardModel:
    """Instrument constants turning sample properties into Jones profiles and en-face truth."""

    depth: int
    wavelength_um: float = 1.3
    voxel_z_um: float = 2.5
    phase_offset_deg: float = 100.0
    enface_offset: int = 0
    enface_depth: int = 70

    @property
    def retardance_per_sample(self) -> float:
        """Radians of δ per depth sample per unit Δn."""
        return 2 * np.pi / self.wavelength_um * self.voxel_z_um

    def _depth_below(self, surface: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Depth below the surface in samples at indices ``z`` (last axis); negative above it."""
        return (z - surface[..., None]).astype(np.float32)

    def jones(
        self, props: SampleProperties, surface: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """J1, J2 of shape ``surface.shape + (depth,)``, complex64, depth increasing."""
        d = self._depth_below(surface, np.arange(self.depth, dtype=np.float32))
        inside = d >= 0
        np.maximum(d, 0, out=d)
        log_amplitude = (np.log(10) / 20 * props.reflectivity_db).astype(np.float32)[..., None]
        amplitude = np.exp(log_amplitude - d / (2 * props.attenuation.astype(np.float32)[..., None]))
        amplitude *= inside
        delta = d * np.float32(self.retardance_per_sample) * props.biref.astype(np.float32)[..., None]
        speckle = rng.random(d.shape, dtype=np.float32) * np.float32(2 * np.pi)
        axis = np.deg2rad(2 * self.phase_offset_deg - 2 * props.theta_deg).astype(np.float32)[..., None]
        return _polar(amplitude * np.sin(delta), speckle), _polar(amplitude * np.cos(delta), speckle + axis)

    def enface(self, props: SampleProperties, surface: np.ndarray) -> EnfaceTruth:
        """Noise-free en-face maps over the inclusive window ``[s+offset, s+offset+depth]``.

        dBI is linear in depth inside the sample, so no voxel is exponentiated; R3D folds δ
        into [0°, 90°] as ``atan(|J1|/|J2|)`` does.
        """
        first = np.clip(np.ceil(surface), 0, self.depth - 1).astype(np.int64)
        z1 = np.clip(first + self.enface_offset, 0, self.depth - 1)
        z = (z1[..., None] + np.arange(self.enface_depth + 1)).astype(np.float32)
        valid = z <= self.depth - 1
        d = self._depth_below(surface, z)
        inside = d >= 0
        eps_db = np.float32(10 * np.log10(EPS_SINGLE))
        slope = (DB_PER_NEPER / props.attenuation).astype(np.float32)[..., None]
        surface_db = props.reflectivity_db.astype(np.float32)[..., None]
        dbi = np.where(inside, np.maximum(surface_db - slope * d, eps_db), eps_db)
        delta = np.float32(np.rad2deg(self.retardance_per_sample)) * props.biref.astype(np.float32)[..., None] * d
        r3d = np.where(inside, np.abs((delta + 90) % 180 - 90), 0)
        count = valid.sum(axis=-1)
        return EnfaceTruth(
            surface=first,
            aip=np.where(valid, dbi, 0).sum(axis=-1) / count,
            mip=np.where(valid, dbi, -np.inf).max(axis=-1),
            ret=np.where(valid, r3d, 0).sum(axis=-1) / count,
            ori=np.where(props.tissue >= 0.5, props.theta_deg, np.nan),
            biref=props.biref,
            tissue=props.tissue,
        )


# --------------------------------------------------------------------------- spectral synthesis


@dataclass(frozen=True, slots=True)
class MedianGuard:
    """A-lines reserved so the per-k median over a B-line is exactly 0.

    Even A-line counts: ``target`` is re-synthesised as ``-J[source]`` (same tissue, speckle
    shifted by π). Odd counts: ``source`` is None and ``target`` carries no signal.
    """

    source: int | None
    target: int

    @classmethod
    def for_alines(cls, alines: int) -> MedianGuard:
        if alines < 2:
            raise ValueError(f"spectral synthesis needs at least 2 A-lines per B-line, found {alines}")
        if alines % 2:
            return cls(None, alines // 2)
        return cls(alines // 2 - 1, alines // 2)


class _KLinearisation:
    """The reconstruction's linear interpolation from camera pixels to the uniform-k grid, and
    its least-squares inverse through the tridiagonal normal equations.

    Spectra are ``(L, n)``: one column per A-line, so every step runs over contiguous rows.
    Target j interpolates pixels ``lo[j]`` and ``lo[j]+1`` of the wavelength-sorted camera.
    """

    def __init__(self, pixel_nm: np.ndarray, target_nm: np.ndarray) -> None:
        length = pixel_nm.size
        order = np.argsort(pixel_nm)
        self._order = None if np.array_equal(order, np.arange(length)) else order
        source = pixel_nm[order]
        lo = np.clip(np.searchsorted(source, target_nm, side="right") - 1, 0, length - 2)
        frac = (target_nm - source[lo]) / (source[lo + 1] - source[lo])
        self._lo, self._w0, self._w1 = lo, (1 - frac)[:, None], frac[:, None]
        self._pixels = (order[lo], order[lo + 1])
        rank = np.arange(length) - np.searchsorted(lo, lo)
        self._levels = [np.flatnonzero(rank == level) for level in range(rank.max() + 1)]
        diagonal = np.bincount(lo, (1 - frac) ** 2, length) + np.bincount(lo + 1, frac**2, length)
        diagonal += 1e-6 * diagonal.max()
        self._off = np.bincount(lo, (1 - frac) * frac, length)[:-1]
        self._scale = np.empty(length)
        self._upper = np.zeros(length)
        for i in range(length):
            pivot = diagonal[i] - (self._off[i - 1] * self._upper[i - 1] if i else 0.0)
            self._scale[i] = 1.0 / pivot
            if i < length - 1:
                self._upper[i] = self._off[i] * self._scale[i]

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        """Interpolate ``(L, n)`` pixel spectra onto the k grid."""
        left, right = self._pixels
        return pixels[left] * self._w0 + pixels[right] * self._w1

    def _adjoint(self, spectra: np.ndarray) -> np.ndarray:
        """Transpose of :meth:`forward` in sorted pixel order. Targets sharing a pixel are split
        into levels (first, second... in their run) so each scatter-add has unique rows."""
        out = np.zeros(spectra.shape)
        for rows in self._levels:
            values = spectra[rows]
            out[self._lo[rows]] += values * self._w0[rows]
            out[self._lo[rows] + 1] += values * self._w1[rows]
        return out

    def inverse(self, spectra: np.ndarray) -> np.ndarray:
        """``(L, n)`` pixel spectra whose interpolation best reproduces ``(L, n)`` k-grid spectra
        (Thomas algorithm on the factorised normal matrix, vectorised over A-lines)."""
        x = self._adjoint(spectra)
        x[0] *= self._scale[0]
        for i in range(1, x.shape[0]):
            x[i] -= self._off[i - 1] * x[i - 1]
            x[i] *= self._scale[i]
        for i in range(x.shape[0] - 2, -1, -1):
            x[i] -= self._upper[i] * x[i + 1]
        if self._order is None:
            return x
        pixels = np.empty_like(x)
        pixels[self._order] = x
        return pixels


class SpectralSynthesizer:
    """Raw two-camera spectra that spec 4.1 reconstructs into given J1/J2 (see module docstring).

    ``noise_counts`` is the camera read noise (counts rms) added before rounding to integers.
    """

    def __init__(
        self,
        calibration: Calibration,
        autocorr_cut: int,
        dispersion: np.ndarray | None = None,
        *,
        noise_counts: float = 0.1,
    ) -> None:
        length = calibration.spectral_length
        self.spectral_length = length
        self.autocorr_cut = autocorr_cut
        self.depth = full_depth(length, autocorr_cut)
        self.noise_counts = noise_counts
        self._dispersion = None
        if dispersion is not None and np.any(dispersion):
            phase = np.asarray(dispersion, np.float64)
            if phase.size != length:
                raise ValueError(f"dispersion needs {length} phase values, found {phase.size}")
            self._dispersion = np.exp(1j * phase).astype(np.complex64)
        target = calibration.target_wavelengths_nm()
        pixels = calibration.pixel_wavelengths_nm()
        self._cameras = tuple(_KLinearisation(pixels[c], target) for c in (0, 1))
        self._dc = 1900.0 + 300.0 * np.exp(-0.5 * ((pixels - CENTRE_WAVELENGTH_NM) / 40.0) ** 2)
        self._offset_leak = tuple(self._leak(c) for c in (0, 1))

    def k_spectra(self, jones: np.ndarray) -> np.ndarray:
        """Real uniform-k fringes ``(L, n)`` from ``(depth, n)`` profiles: the dispersion-compensated
        FFT has the profiles at bins ``cut..cut+depth-1``; ``2·Re(ifft(J)·e^{iφ})``, an inverse real
        FFT when φ is 0."""
        if jones.shape[0] != self.depth:
            raise ValueError(f"J profiles need {self.depth} depth samples, found {jones.shape[0]}")
        bins = np.s_[self.autocorr_cut : self.autocorr_cut + self.depth]
        if self._dispersion is None:
            half = np.zeros((self.spectral_length // 2 + 1, *jones.shape[1:]), dtype=np.complex64)
            half[bins] = jones
            return np.fft.irfft(half, n=self.spectral_length, axis=0)
        spectrum = np.zeros((self.spectral_length, *jones.shape[1:]), dtype=np.complex64)
        spectrum[bins] = jones
        return 2 * np.real(np.fft.ifft(spectrum, axis=0) * self._dispersion[:, None]).astype(np.float32)

    def encode(self, j1: np.ndarray, j2: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(Bline, 2, Aline, L)`` uint16 counts (increasing pixel order) from J of shape
        ``(Aline, Bline, depth)``; the :class:`MedianGuard` A-lines are overwritten."""
        alines, blines, depth = j1.shape
        guard = MedianGuard.for_alines(alines)
        out = np.empty((blines, 2, alines, self.spectral_length), dtype=np.uint16)
        for camera, jones in enumerate((j1, j2)):
            profiles = np.array(jones.transpose(2, 1, 0), dtype=np.complex64)
            if guard.source is None:
                profiles[:, :, guard.target] = 0
            else:
                profiles[:, :, guard.target] = -profiles[:, :, guard.source]
            counts = self._camera_counts(camera, profiles.reshape(depth, -1), guard, alines, rng)
            out[:, camera] = counts.T.reshape(blines, alines, -1)
        return out

    def _camera_counts(
        self, camera: int, profiles: np.ndarray, guard: MedianGuard, alines: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Counts ``(L, Bline*Aline)`` for one camera, with the median-guard offsets."""
        linear = self._cameras[camera]
        counts = linear.inverse(self.k_spectra(profiles))
        reference = guard.target if guard.source is None else guard.source
        margin = 6 * np.sqrt(2) * self.noise_counts + 2
        peaks = self._peaks(linear, counts, alines)
        leak_pixels, leak_peak = self._offset_leak[camera]
        level = np.ceil((peaks.max(axis=1) + peaks[:, reference] + margin) / (1 - leak_peak))
        reserved = [guard.target] if guard.source is None else [guard.source, guard.target]
        others = np.setdiff1d(np.arange(alines), reserved)
        signs = np.zeros(alines)
        signs[others] = np.where(np.arange(others.size) % 2, 1.0, -1.0)
        offsets = (level[:, None] * signs).reshape(1, -1)
        if leak_peak:
            counts -= leak_pixels * offsets
            peaks = self._peaks(linear, counts, alines)
            if np.any(level <= peaks.max(axis=1) + peaks[:, reference] + margin):
                raise RuntimeError("median-guard offsets no longer bracket the fringes after the dispersion correction")
        counts += self._dc[camera][:, None] + offsets
        counts += self.noise_counts * rng.standard_normal(counts.shape, dtype=np.float32)
        np.rint(counts, out=counts)
        if counts.min() < 0 or counts.max() > MAX_COUNT:
            raise ValueError(
                f"simulated camera {camera + 1} counts span [{counts.min():.0f}, {counts.max():.0f}], "
                f"outside 12 bits [0, {MAX_COUNT}]: the sample is too bright for this spectral length"
            )
        return counts.astype(np.uint16)

    @staticmethod
    def _peaks(linear: _KLinearisation, pixels: np.ndarray, alines: int) -> np.ndarray:
        """Largest |k-domain fringe| per A-line, ``(Bline, Aline)``."""
        return np.abs(linear.forward(pixels)).max(axis=0).reshape(-1, alines)

    def _leak(self, camera: int) -> tuple[np.ndarray, float]:
        """Pixel fringe that cancels a unit offset's dispersion leak into the kept bins, and its
        largest k-domain value. A constant times ``e^{-iφ}`` is no longer confined to bin 0."""
        if self._dispersion is None:
            return np.zeros((self.spectral_length, 1)), 0.0
        bins = np.s_[self.autocorr_cut : self.autocorr_cut + self.depth]
        leak = np.fft.fft(np.conj(self._dispersion).astype(np.complex128))[bins]
        pixels = self._cameras[camera].inverse(self.k_spectra(leak[:, None].astype(np.complex64)))
        return pixels, float(np.abs(self._cameras[camera].forward(pixels)).max())

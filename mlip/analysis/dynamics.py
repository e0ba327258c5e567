"""Vibrational density of states, spectral overlap and mean squared displacement of trajectories."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(max_lag,) Σ over the trailing axes of <x(t) x(t + τ)>_t for x (T, ...), by FFT, each lag
    averaged over the T - τ pairs it has."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(flat, n=size, axis=0)
    correlation = np.fft.irfft(spectrum * spectrum.conj(), n=size, axis=0)[:max_lag].sum(axis=1)
    return correlation / (n - np.arange(max_lag))


def vdos(traj, max_lag: Optional[float] = None, every: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(frequency (F,) THz, spectrum (F,)) of unit area: the Fourier transform of the mass-weighted
    velocity autocorrelation Σ_i m_i <v_i(0)·v_i(τ)>, up to the lag ``max_lag`` fs (default: a
    quarter of the trajectory) under a Hann window, from the frames' velocities every ``every``-th
    frame (so a reference MD can be sampled at a forecast's interval). Frequencies reach the Nyquist
    frequency of the sampling interval; motion faster than it folds back (aliasing), the same in a
    trajectory and its reference when both are sampled alike."""
    velocities = np.asarray(traj.velocities)[::every]
    interval = float(traj.times[every] - traj.times[0])  # fs
    frames = velocities.shape[0]
    lags = frames // 4 if max_lag is None else int(round(max_lag / interval))
    lags = max(2, min(lags, frames - 1))
    weighted = velocities * np.sqrt(np.asarray(traj.masses))[None, :, None]
    correlation = _autocorrelation(weighted, lags) * np.hanning(2 * lags)[lags:]
    spectrum = np.abs(np.fft.rfft(np.concatenate([correlation, correlation[1:][::-1]])))  # even in τ
    frequency = np.fft.rfftfreq(2 * lags - 1, d=interval * 1e-3)  # THz
    return frequency, spectrum / np.trapezoid(spectrum, frequency)


def spectral_overlap(reference: np.ndarray, other: np.ndarray, frequency: Optional[np.ndarray] = None) -> float:
    """1 - ½ ∫|a - b| dν of two spectra on one grid, each scaled to unit area: 1 for the same
    spectrum, 0 for spectra with no frequency in common (the overlap ∫ min(a, b) dν)."""
    x = np.arange(len(reference), dtype=float) if frequency is None else frequency
    a = reference / np.trapezoid(reference, x)
    b = other / np.trapezoid(other, x)
    return float(1.0 - 0.5 * np.trapezoid(np.abs(a - b), x))


def unwrapped_positions(traj) -> np.ndarray:
    """(T,N,3) Å: positions made continuous across periodic boundaries (each step's displacement
    taken to its nearest image)."""
    from mlip.data.trajectory import minimum_image

    pos = np.asarray(traj.positions)
    steps = [minimum_image(pos[t + 1] - pos[t], traj.cells[t], np.asarray(traj.pbc)) for t in range(len(pos) - 1)]
    return np.concatenate([pos[:1], pos[:1] + np.cumsum(steps, axis=0)]) if steps else pos


def mean_squared_displacement(traj, max_lag: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(lag (L,) fs, MSD (L,) Å²): <|r_i(t + τ) - r_i(t)|²> over atoms and time origins, positions
    unwrapped, the centre of mass's drift removed; lags up to ``max_lag`` fs (default: half the
    trajectory)."""
    pos = unwrapped_positions(traj)
    masses = np.asarray(traj.masses)
    pos = pos - (np.einsum("n,tnk->tk", masses, pos) / masses.sum())[:, None, :]
    interval = float(traj.times[1] - traj.times[0])
    frames = pos.shape[0]
    lags = frames // 2 if max_lag is None else min(frames - 1, int(round(max_lag / interval)))
    msd = np.array([np.mean(np.sum((pos[k:] - pos[:frames - k]) ** 2, axis=-1)) for k in range(lags + 1)])
    return np.arange(lags + 1) * interval, msd

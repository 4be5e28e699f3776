#!/usr/bin/env python3
"""Fits the two pieces of kernels/cpu/vec_math.h's float erf by least squares in double and
prints their coefficients (as floats) and the worst absolute error of the float evaluation on a
grid over [-6, 6]:
  |x| < 0.9:    erf(x) = x P(x^2), P of degree 6, weighted for relative error
  0.9 <= |x| <= 4: erf(x) = 1 - exp(-x^2) Q(1/x), Q of degree 10, erfc's relative error
Needs numpy.  python3 bench/cpu/fit_erf.py
"""
import math

import numpy as np

NODES = np.cos(np.linspace(0, np.pi, 4000)) * 0.5 + 0.5  # clustered at both ends of [0, 1]


def fit_near_zero(degree=6, hi=0.95):
    x = 1e-6 + (hi - 1e-6) * NODES
    y = np.array([math.erf(v) / v for v in x])
    a = np.vander(x * x, degree + 1, increasing=True)
    c, *_ = np.linalg.lstsq(a / y[:, None], np.ones_like(y), rcond=None)
    return c


def fit_tail(degree=10, lo=0.9, hi=4.0):
    x = lo + (hi - lo) * NODES
    g = np.array([math.erfc(v) * math.exp(v * v) for v in x])
    a = np.vander(1 / x, degree + 1, increasing=True)
    c, *_ = np.linalg.lstsq(a / g[:, None], np.ones_like(g), rcond=None)
    return c


def horner(coefficients, v):
    acc = np.float32(coefficients[-1])
    for k in reversed(coefficients[:-1]):
        acc = np.float32(acc * v + np.float32(k))
    return acc


def erf_float(x, near, tail):
    x = np.float32(x)
    ax = abs(x)
    if ax > 4:
        return np.float32(math.copysign(1, x))
    u = np.float32(x * x)
    if ax < 0.9:
        return np.float32(x * horner(near, u))
    t = np.float32(np.float32(1) / ax)
    y = np.float32(1) - np.float32(np.float32(math.exp(-u)) * horner(tail, t))
    return y if x >= 0 else -y


def main():
    near, tail = fit_near_zero(), fit_tail()
    print("near zero (x^0, x^2, ...):", [float(np.float32(v)) for v in near])
    print("tail (t^0, t^1, ...):", [float(np.float32(v)) for v in tail])
    worst = max(abs(float(erf_float(v, near, tail)) - math.erf(float(np.float32(v))))
                for v in np.arange(-6, 6, 0.000937))
    print(f"worst absolute error of the float evaluation: {worst:.3g}")


if __name__ == "__main__":
    main()

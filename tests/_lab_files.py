"""Small, realistic lab RSM files for the tests: a PANalytical ``.xrdml``
(XRDML 1.5 schema: ``xrdMeasurements/xrdMeasurement`` with
``usedWavelength`` and one ``scan`` per omega offset, each a 2Theta-Omega
scan with ``positions`` start/end and ``intensities``) and a Rigaku
``.ras`` (``*RAS_HEADER_START`` ... ``*RAS_INT_START``, three columns
angle / counts / attenuator), as written by the instruments' software."""
from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import numpy as np

WAVELENGTH = 1.5405980  # Cu K-alpha1 (angstrom)
PEAK_TT = 46.5          # 2theta of the film peak (degrees): q_z = 4 pi sin(23.25 deg) / lambda


def peak_q(wavelength: float = WAVELENGTH) -> float:
    return 4 * np.pi * np.sin(np.radians(PEAK_TT / 2)) / wavelength


def rsm_angles(n_scans: int = 21, n_points: int = 61):
    """Omega offsets x 2theta-omega scans around the symmetric film peak,
    and counts: a film peak with thickness fringes along q_z and two
    satellites along q_x, on a background of 2 counts."""
    offsets = np.linspace(-0.6, 0.6, n_scans)
    tt = np.linspace(PEAK_TT - 2.0, PEAK_TT + 2.0, n_points)
    om = tt[None, :] / 2 + offsets[:, None]
    tt2 = np.broadcast_to(tt, om.shape)
    k = 2 * np.pi / WAVELENGTH
    th = np.radians(tt2 / 2)
    qz = 2 * k * np.sin(th) * np.cos(np.radians(om) - th)
    qx = 2 * k * np.sin(th) * np.sin(np.radians(om) - th)
    dz = qz - peak_q()
    fringe = np.sinc(dz * 150 / (2 * np.pi)) ** 2
    lateral = sum(a * np.exp(-0.5 * ((qx - c) / 0.002) ** 2)
                  for a, c in ((1.0, 0.0), (0.1, 0.02), (0.1, -0.02)))
    counts = np.random.default_rng(0).poisson(2 + 5e4 * fringe * lateral)
    return offsets, tt, om, counts


def _open(path: Path, mode: str):
    if path.suffix == ".bz2":
        return bz2.open(path, mode)
    if path.suffix == ".gz":
        return gzip.open(path, mode)
    return open(path, mode)


def write_xrdml(path, *, wavelength: bool = True, n_scans: int = 21, n_points: int = 61) -> Path:
    path = Path(path)
    offsets, tt, om, counts = rsm_angles(n_scans, n_points)
    used = ("""    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">%.7f</kAlpha1>
      <kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <kBeta unit="Angstrom">1.3922500</kBeta>
      <ratioKAlpha2KAlpha1>0.0000</ratioKAlpha2KAlpha1>
    </usedWavelength>
""" % WAVELENGTH) if wavelength else ""
    scans = []
    for i, _off in enumerate(offsets):
        scans.append(f"""    <scan appendNumber="{i}" mode="Continuous" scanAxis="2Theta-Omega" status="Completed">
      <header>
        <startTimeStamp>2024-03-01T10:{i:02d}:00+01:00</startTimeStamp>
        <endTimeStamp>2024-03-01T10:{i:02d}:50+01:00</endTimeStamp>
        <author><name>user</name></author>
        <source><applicationSoftware version="5.5">Data Collector</applicationSoftware></source>
      </header>
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          <startPosition>{tt[0]:.5f}</startPosition>
          <endPosition>{tt[-1]:.5f}</endPosition>
        </positions>
        <positions axis="Omega" unit="deg">
          <startPosition>{om[i, 0]:.5f}</startPosition>
          <endPosition>{om[i, -1]:.5f}</endPosition>
        </positions>
        <positions axis="Phi" unit="deg"><commonPosition>0.00</commonPosition></positions>
        <commonCountingTime unit="seconds">0.50</commonCountingTime>
        <intensities unit="counts">{" ".join(str(int(c)) for c in counts[i])}</intensities>
      </dataPoints>
    </scan>
""")
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xrdml.com/XRDMeasurement/1.5 http://www.xrdml.com/XRDMeasurement/1.5/XRDMeasurement.xsd" status="Completed">
  <comment><entry>Configuration=Reflection-transmission spinner, Owner=User-1</entry></comment>
  <sample type="To be analyzed"><id>film</id><name>film</name></sample>
  <xrdMeasurement measurementType="Area measurement" status="Completed" sampleMode="Reflection">
{used}    <incidentBeamPath>
      <radius unit="mm">240.00</radius>
      <xRayTube name="X-ray tube"><tension unit="kV">45</tension><current unit="mA">40</current><anodeMaterial>Cu</anodeMaterial></xRayTube>
    </incidentBeamPath>
    <diffractedBeamPath><radius unit="mm">240.00</radius><detector name="PIXcel" xsi:type="detectorType"><phd><lowerLevel unit="%">25.5</lowerLevel></phd></detector></diffractedBeamPath>
{"".join(scans)}  </xrdMeasurement>
</xrdMeasurements>
"""
    with _open(path, "wb") as fh:
        fh.write(text.encode())
    return path


def write_ras(path, *, wavelength: bool = True, n_scans: int = 21, n_points: int = 61) -> Path:
    path = Path(path)
    offsets, tt, om, counts = rsm_angles(n_scans, n_points)
    parts = ["*RAS_DATA_START\r\n"]
    for i, _off in enumerate(offsets):
        header = [
            '*RAS_HEADER_START',
            '*FILE_COMMENT ""',
            f'*FILE_MEMO "rsm {i}"',
            '*HW_XG_TARGET_NAME "Cu"',
        ]
        if wavelength:
            header.append(f'*HW_XG_WAVE_LENGTH_ALPHA1 "{WAVELENGTH:.6f}"')
        header += [
            '*MEAS_COND_AXIS_NAME-0 "2-Theta"',
            '*MEAS_COND_AXIS_NAME_INTERNAL-0 "TwoTheta"',
            f'*MEAS_COND_AXIS_POSITION-0 "{tt[0]:.4f}"',
            '*MEAS_COND_AXIS_NAME-1 "Omega"',
            '*MEAS_COND_AXIS_NAME_INTERNAL-1 "Omega"',
            f'*MEAS_COND_AXIS_POSITION-1 "{om[i, 0]:.4f}"',
            f'*MEAS_DATA_COUNT "{len(tt)}"',
            '*MEAS_SCAN_AXIS_X "2-Theta/Omega"',
            '*MEAS_SCAN_AXIS_X_INTERNAL "TwoThetaOmega"',
            f'*MEAS_SCAN_START "{tt[0]:.4f}"',
            f'*MEAS_SCAN_STEP "{tt[1] - tt[0]:.4f}"',
            f'*MEAS_SCAN_STOP "{tt[-1]:.4f}"',
            '*MEAS_SCAN_SPEED "2.0000"',
            '*MEAS_SCAN_START_TIME "03/01/24 10:00:00"',
            '*MEAS_SCAN_END_TIME "03/01/24 10:01:00"',
            '*RAS_HEADER_END',
            '*RAS_INT_START',
        ]
        rows = [f"{t:.4f} {int(c)} 1.0000" for t, c in zip(tt, counts[i])]
        parts.append("\r\n".join(header + rows + ["*RAS_INT_END"]) + "\r\n")
    parts.append("*RAS_DATA_END\r\n")
    with _open(path, "wb") as fh:
        fh.write("".join(parts).encode("ascii"))
    return path

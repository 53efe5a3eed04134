"""Which order codes are lumbar spine or hip imaging, and which rated procedure each one is.

LOINC codes are those of the LOINC/RSNA radiology playbook; CPT codes those of the AMA (the
Argonaut PAMA guide asks for CPT, "SNOMED/LOINC if CPT is unavailable"). A code lists the
procedures of the assessment it may mean: more than one when it leaves the contrast unsaid,
`None` for a study the assessment never rates (with IV contrast only, for instance). An order
is rated only when every procedure it may mean has the same rating.

CPT 73700/73701/73702 (CT) and 73721/73722/73723 (MRI) name the leg, not the hip: they are
read as hip studies only when the order says hip, by its `bodySite` (SNOMED CT hip joint or
region) or its `reasonCode` (a hip pain or hip osteoarthritis code); otherwise they are not
ours to rate. Myelography codes (62304, 72265) are read as CT myelography, the study the
criteria rate (a myelogram is followed by CT, billed as 72132).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .terminology import CPT, LOINC, SNOMED


@dataclass(frozen=True)
class ImagingCode:
    system: str
    code: str
    display: str
    procedures: tuple[str | None, ...]
    leg: bool = False  # names the leg, not the hip: hip only when the order says so

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}

    @property
    def region(self) -> str:
        """`hip` or `low_back`: the site whose assessment rates the study."""
        hip = self.leg or any(p in HIP_PROCEDURES for p in self.procedures if p)
        return "hip" if hip or "hip" in self.display.lower() else "low_back"


_XR_L, _CT_L, _MR_L = ("radiograph_lumbar_spine", "ct_lumbar_spine_without_contrast",
                       "mri_lumbar_spine_without_contrast")
_MR_L_WW, _MYELO = "mri_lumbar_spine_with_and_without_contrast", "ct_myelography"
_CT_L_C, _CT_L_WW = ("ct_lumbar_spine_with_contrast", "ct_lumbar_spine_with_and_without_contrast")
_XR_H, _CT_H, _MR_H, _US_H = ("radiograph_hip_pelvis", "ct_hip_without_contrast",
                              "mri_hip_without_contrast", "ultrasound_hip")

_TABLE: tuple[tuple[str, str, str, tuple[str | None, ...]], ...] = (
    (LOINC, "24972-2", "XR Lumbar spine Views", (_XR_L,)),
    (LOINC, "24970-6", "XR Lumbar spine AP and Lateral", (_XR_L,)),
    (LOINC, "24969-8", "XR Lumbar spine Lateral", (_XR_L,)),
    (LOINC, "24971-4", "XR Lumbar spine Views W flexion and W extension", (_XR_L,)),
    (LOINC, "30773-6", "XR Lumbar spine Single view", (_XR_L,)),
    (LOINC, "30775-1", "XR Lumbar spine 3 Views", (_XR_L,)),
    (LOINC, "30620-9", "CT Lumbar spine WO contrast", (_CT_L,)),
    (LOINC, "24963-1", "CT Lumbar spine", (_CT_L, _CT_L_C, _CT_L_WW)),
    (LOINC, "24964-9", "CT Lumbar spine W contrast IV", (_CT_L_C,)),
    (LOINC, "24965-6", "CT Lumbar spine W contrast IT", (_MYELO,)),
    (LOINC, "30679-5", "MR Lumbar spine WO contrast", (_MR_L,)),
    (LOINC, "24967-2", "MR Lumbar spine WO and W contrast IV", (_MR_L_WW,)),
    (LOINC, "24968-0", "MR Lumbar spine", (_MR_L, _MR_L_WW)),
    (LOINC, "30678-7", "MR Lumbar spine W contrast IV", (None,)),
    (LOINC, "24761-9", "XR Hip Single view", (_XR_H,)),
    (LOINC, "24762-7", "XR Hip Views", (_XR_H,)),
    (LOINC, "30767-8", "XR Pelvis and Hip Views", (_XR_H,)),
    (LOINC, "30768-6", "XR Pelvis and Hip - bilateral Views", (_XR_H,)),
    (LOINC, "30770-2", "XR Pelvis and Hip AP and Lateral frog", (_XR_H,)),
    (LOINC, "36484-4", "CT Hip WO contrast", (_CT_H,)),
    (LOINC, "36485-1", "CT Hip - bilateral WO contrast", (_CT_H,)),
    (LOINC, "36487-7", "CT Hip - left WO contrast", (_CT_H,)),
    (LOINC, "36489-3", "CT Hip - right WO contrast", (_CT_H,)),
    (LOINC, "36014-9", "CT Hip", (_CT_H, None)),
    (LOINC, "30687-8", "MR Hip WO contrast", (_MR_H,)),
    (LOINC, "36486-9", "MR Hip - bilateral WO contrast", (_MR_H,)),
    (LOINC, "36488-5", "MR Hip - left WO contrast", (_MR_H,)),
    (LOINC, "36490-1", "MR Hip - right WO contrast", (_MR_H,)),
    (LOINC, "30671-2", "MR Pelvis and Hip WO contrast", (_MR_H,)),
    (LOINC, "36013-1", "MR Hip", (_MR_H, None)),
    (LOINC, "30688-6", "MR Hip WO and W contrast IV", (None,)),
    (LOINC, "24760-1", "US Hip", (_US_H,)),
    (CPT, "72100", "X-ray lumbosacral spine, 2 or 3 views", (_XR_L,)),
    (CPT, "72110", "X-ray lumbosacral spine, at least 4 views", (_XR_L,)),
    (CPT, "72114", "X-ray lumbosacral spine, complete with bending views", (_XR_L,)),
    (CPT, "72120", "X-ray lumbosacral spine, bending views only", (_XR_L,)),
    (CPT, "72131", "CT lumbar spine without contrast", (_CT_L,)),
    # With contrast: IV, or intrathecal after a myelogram; rated when both rate the same.
    (CPT, "72132", "CT lumbar spine with contrast", (_CT_L_C, _MYELO)),
    (CPT, "72133", "CT lumbar spine without and with contrast", (_CT_L_WW,)),
    (CPT, "72148", "MRI lumbar spinal canal without contrast", (_MR_L,)),
    (CPT, "72149", "MRI lumbar spinal canal with contrast", (None,)),
    (CPT, "72158", "MRI lumbar spinal canal without and with contrast", (_MR_L_WW,)),
    (CPT, "62304", "Myelography via lumbar injection, lumbosacral", (_MYELO,)),
    (CPT, "72265", "Myelography, lumbosacral, supervision and interpretation", (_MYELO,)),
    (CPT, "72170", "X-ray pelvis, 1 or 2 views", (_XR_H,)),
    (CPT, "72190", "X-ray pelvis, complete, at least 3 views", (_XR_H,)),
    (CPT, "73501", "X-ray hip, one side, 1 view", (_XR_H,)),
    (CPT, "73502", "X-ray hip, one side, 2-3 views", (_XR_H,)),
    (CPT, "73503", "X-ray hip, one side, at least 4 views", (_XR_H,)),
    (CPT, "73521", "X-ray both hips with pelvis, 2 views", (_XR_H,)),
    (CPT, "73522", "X-ray both hips with pelvis, 3-4 views", (_XR_H,)),
    (CPT, "73523", "X-ray both hips with pelvis, at least 5 views", (_XR_H,)),
)
# (system, code, display, procedures) of the codes that name the leg, read as hip studies
# only when the order says hip.
_LEG: tuple[tuple[str, str, str, tuple[str | None, ...]], ...] = (
    (CPT, "73700", "CT lower extremity (hip) without contrast", (_CT_H,)),
    (CPT, "73701", "CT lower extremity (hip) with contrast", (None,)),
    (CPT, "73702", "CT lower extremity (hip) without and with contrast", (None,)),
    (CPT, "73721", "MRI joint of lower extremity (hip) without contrast", (_MR_H,)),
    (CPT, "73722", "MRI joint of lower extremity (hip) with contrast", (None,)),
    (CPT, "73723", "MRI joint of lower extremity (hip) without and with contrast", (None,)),
)
# SNOMED CT body sites that say the study is of the hip.
HIP_BODY_SITES = frozenset({(SNOMED, "24136001"), (SNOMED, "29836001"), (SNOMED, "287679003"),
                            (SNOMED, "287579007"), (SNOMED, "362929001")})

IMAGING_CODES: dict[tuple[str, str], ImagingCode] = {
    **{(system, code): ImagingCode(system, code, display, procedures)
       for system, code, display, procedures in _TABLE},
    **{(system, code): ImagingCode(system, code, display, procedures, leg=True)
       for system, code, display, procedures in _LEG},
}

# The code a suggested replacement study is written with, per procedure and code system: the
# first code of the table that means exactly that procedure (a leg code never: it needs a
# body site to mean the hip).
_PREFERRED: dict[tuple[str, str], ImagingCode] = {}
for _entry in IMAGING_CODES.values():
    if len(_entry.procedures) == 1 and _entry.procedures[0] and not _entry.leg:
        _PREFERRED.setdefault((_entry.procedures[0], _entry.system), _entry)
PREFERRED_CODE: dict[str, ImagingCode] = {
    procedure: code for (procedure, system), code in _PREFERRED.items() if system == LOINC}


def preferred_code(procedure: str, system: str) -> ImagingCode | None:
    """The code of this procedure in the order's own code system, else in LOINC."""
    return _PREFERRED.get((procedure, system)) or _PREFERRED.get((procedure, LOINC))


HIP_PROCEDURES = frozenset({_XR_H, _CT_H, _MR_H, _US_H})


def region(procedure: str) -> str:
    return "hip" if procedure in HIP_PROCEDURES else "low_back"


def _says_hip(order: Any, hip_reasons: frozenset[tuple[str, str]]) -> bool:
    def coded(concepts: Iterable[Any] | None) -> set[tuple[str, str]]:
        return {(c.system, c.code) for concept in concepts or [] for c in concept.coding or []}
    return bool(coded(getattr(order, "bodySite", None)) & HIP_BODY_SITES
                or coded(getattr(order, "reasonCode", None)) & hip_reasons)


def imaging_code(codings: list[tuple[str, str]], order: Any = None,
                 hip_reasons: frozenset[tuple[str, str]] = frozenset()) -> ImagingCode | None:
    """The first coding of an order that is lumbar spine or hip imaging (a leg study only
    when the order's body site or reason says hip)."""
    for key in codings:
        entry = IMAGING_CODES.get(key)
        if entry is not None and (not entry.leg or _says_hip(order, hip_reasons)):
            return entry
    return None

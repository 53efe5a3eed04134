"""Built-in example presentations the trace viewer can run (fictional patients)."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "cauda_equina": {
        "title": "Emergency: saddle anaesthesia and bilateral sciatica (45, male)",
        "presentation": {
            "patient": {"age": 45, "sex": "male"},
            "pain": {"sites": ["low_back"], "duration_days": 10, "radiation": "below_knee",
                     "leg_symptoms": "bilateral"},
            "neuro": {"saddle_anaesthesia": True},
        },
    },
    "sciatica": {
        "title": "Routine: three weeks of unilateral sciatica, red flags screened (38, female)",
        "presentation": {
            "patient": {"age": 38, "sex": "female", "pregnant": False},
            "pain": {"sites": ["low_back"], "duration_days": 21, "onset": "gradual",
                     "radiation": "below_knee", "leg_symptoms": "unilateral",
                     "night_pain": False},
            "history": {"trauma": "none", "cancer": False, "unexplained_weight_loss": False,
                        "fever": False, "iv_drug_use": False, "immunosuppression": False,
                        "long_term_corticosteroids": False, "osteoporosis": False,
                        "recent_bacterial_infection": False},
            "neuro": {"saddle_anaesthesia": False, "urinary_retention": False,
                      "bladder_or_bowel_incontinence": False, "weakness": "none",
                      "foot_drop": False, "straight_leg_raise": "positive"},
            "associated": {"abdominal_pain": False, "nausea_vomiting": False,
                           "urinary_symptoms": False},
        },
    },
    "chronic_high_risk": {
        "title": "Chronic back pain with a high STarT Back score (52, female)",
        "presentation": {
            "patient": {"age": 52, "sex": "female"},
            "pain": {"sites": ["low_back"], "duration_days": 200, "mechanical": True},
            "comorbidities": {"heart_failure": True},
            "start_back": {"leg_pain": True, "neck_or_shoulder_pain": True,
                           "walks_short_distances_only": True, "dresses_slowly": False,
                           "activity_unsafe": True, "worrying_thoughts": True,
                           "catastrophising": True, "low_mood": True,
                           "bothersomeness": "very_much"},
        },
    },
    "hip_fracture": {
        "title": "Hip pain after a fall, unable to bear weight (81, female)",
        "presentation": {
            "patient": {"age": 81, "sex": "female"},
            "pain": {"sites": ["hip"], "duration_days": 1, "onset": "sudden",
                     "hip_region": "groin"},
            "history": {"fall": True, "trauma": "minor", "osteoporosis": True},
            "exam": {"unable_to_bear_weight": True, "leg_shortened_externally_rotated": True},
        },
    },
}

"""Code systems the mappings use, in one place, with the NHS code lists we check codes against.

A code is only put under a national system when it is in that system's list; anything else is
kept, unchanged, under the feed's own system (`local_system`) so a per-feed code map can
translate it later and nothing is silently mislabelled (ITK table 0112 "2" is not the NHS Data
Dictionary's discharge method "2", which no longer exists).

Displays are short labels written for operators, not the Data Dictionary's full wording.
Sources: UK Core R4 CodeSystems (HL7 UK, copied from the NHS Data Dictionary, 2021-2022).

It sits at the top of `mappings`, beside the model, not in a subpackage: these are the
vocabulary of the care event itself, read and written by `hl7v2`, `fhir` and `clinical` alike
and by the feed profile.
"""

from __future__ import annotations

from mappings.model import NHS_NUMBER_SYSTEM, ODS_ORGANISATION_SYSTEM, ODS_SITE_SYSTEM

__all__ = [
    "ADMISSION_METHODS",
    "ADMISSION_METHOD_ENGLAND",
    "DISCHARGE_DESTINATIONS",
    "DISCHARGE_DESTINATION_ENGLAND",
    "DISCHARGE_METHODS",
    "DISCHARGE_METHOD_ENGLAND",
    "ETHNIC_CATEGORIES",
    "ETHNIC_CATEGORY_ENGLAND",
    "HL7_PATIENT_CLASS",
    "LEGAL_STATUSES",
    "LEGAL_STATUS_ENGLAND",
    "NHS_NUMBER_STATUSES",
    "NHS_NUMBER_SYSTEM",
    "ODS_ORGANISATION_SYSTEM",
    "ODS_SITE_SYSTEM",
    "PATIENT_CLASSES",
    "RISK_FLAG",
    "SOURCES_OF_ADMISSION",
    "SOURCE_OF_ADMISSION_ENGLAND",
    "TREATMENT_FUNCTION",
    "is_local_system",
    "local_system",
]

ADMISSION_METHOD_ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland"
SOURCE_OF_ADMISSION_ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-SourceOfAdmissionEngland"
DISCHARGE_METHOD_ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeMethodEngland"
DISCHARGE_DESTINATION_ENGLAND = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeDestinationEngland"
)
ETHNIC_CATEGORY_ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
# UK Core has no treatment-function CodeSystem; NHS England's own FHIR services use this one.
TREATMENT_FUNCTION = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function"
HL7_PATIENT_CLASS = "http://terminology.hl7.org/CodeSystem/v2-0004"
LEGAL_STATUS_ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland"
# The engine's own flag for a feed that only says yes/no ("high risk: Y"); coded risk flags
# keep the sender's codes under the feed's local system.
RISK_FLAG = "urn:carebridge:risk-flag"

_LOCAL_PREFIX = "urn:carebridge:local:"


def is_local_system(system: str) -> bool:
    """True for a `local_system`: the sender's own code, outside every national list."""
    return system.startswith(_LOCAL_PREFIX)


def local_system(feed: str, element: str) -> str:
    """The system for a code the sender used outside the national list (``PV1-36`` of a feed).

    Scoped by feed and element because two senders' local codes mean different things.
    """
    return f"{_LOCAL_PREFIX}{feed}:{element}"


PATIENT_CLASSES: dict[str, str] = {
    "B": "Obstetrics",
    "C": "Commercial account",
    "E": "Emergency",
    "I": "Inpatient",
    "N": "Not applicable",
    "O": "Outpatient",
    "P": "Preadmit",
    "R": "Recurring patient",
    "U": "Unknown",
}

ADMISSION_METHODS: dict[str, str] = {
    "11": "Elective: waiting list",
    "12": "Elective: booked",
    "13": "Elective: planned",
    "21": "Emergency: emergency care department",
    "22": "Emergency: GP request",
    "23": "Emergency: bed bureau",
    "24": "Emergency: consultant clinic",
    "25": "Emergency: mental health crisis resolution team",
    "2A": "Emergency: another provider's emergency care department",
    "2B": "Emergency: transfer from another hospital provider",
    "2C": "Emergency: baby born at home as intended",
    "2D": "Emergency: other",
    "28": "Emergency: other means",
    "31": "Maternity: ante partum",
    "32": "Maternity: post partum",
    "81": "Other: non-emergency transfer from another hospital provider",
    "82": "Other: birth in this provider",
    "83": "Other: baby born outside the provider",
    "98": "Not applicable",
    "99": "Not known",
}

SOURCES_OF_ADMISSION: dict[str, str] = {
    "19": "Usual place of residence",
    "29": "Temporary place of residence",
    "39": "Penal establishment, court or police",
    "49": "NHS high security psychiatric accommodation",
    "51": "NHS other provider: general ward or emergency care department",
    "52": "NHS other provider: maternity or neonatal ward",
    "53": "NHS other provider: mental illness or learning disability ward",
    "54": "NHS run care home",
    "65": "Local authority residential accommodation",
    "66": "Local authority foster care",
    "79": "Baby born in or on the way to hospital",
    "85": "Non-NHS run care home",
    "87": "Non-NHS run hospital",
    "88": "Non-NHS run hospice",
    "98": "Not applicable",
    "99": "Not known",
}

DISCHARGE_METHODS: dict[str, str] = {
    "1": "On clinical advice or with clinical consent",
    "3": "By mental health review tribunal, Home Secretary or court",
    "4": "Patient died",
    "5": "Stillbirth",
    "6": "Self-discharge",
    "7": "By a relative or advocate",
    "8": "Not applicable",
    "9": "Not known",
}

DISCHARGE_DESTINATIONS: dict[str, str] = {
    "19": "Usual place of residence",
    "29": "Temporary place of residence",
    "30": "Repatriation from high security psychiatric accommodation",
    "37": "Court",
    "38": "Penal establishment or police station",
    "48": "High security psychiatric hospital, Scotland",
    "49": "NHS other provider: high security psychiatric accommodation",
    "50": "NHS other provider: medium secure unit",
    "51": "NHS other provider: general ward",
    "52": "NHS other provider: maternity or neonatal ward",
    "53": "NHS other provider: mental illness or learning disability ward",
    "54": "NHS run care home",
    "65": "Local authority residential accommodation",
    "66": "Local authority foster care",
    "79": "Not applicable: patient died or stillbirth",
    "84": "Non-NHS run hospital: medium secure unit",
    "85": "Non-NHS run care home",
    "87": "Non-NHS run hospital",
    "88": "Non-NHS run hospice",
    "98": "Not applicable: spell not finished",
    "99": "Not known",
}

ETHNIC_CATEGORIES: dict[str, str] = {
    "A": "White - British",
    "B": "White - Irish",
    "C": "White - Any other White background",
    "D": "Mixed - White and Black Caribbean",
    "E": "Mixed - White and Black African",
    "F": "Mixed - White and Asian",
    "G": "Mixed - Any other mixed background",
    "H": "Asian or Asian British - Indian",
    "J": "Asian or Asian British - Pakistani",
    "K": "Asian or Asian British - Bangladeshi",
    "L": "Asian or Asian British - Any other Asian background",
    "M": "Black or Black British - Caribbean",
    "N": "Black or Black British - African",
    "P": "Black or Black British - Any other Black background",
    "R": "Other Ethnic Groups - Chinese",
    "S": "Other Ethnic Groups - Any other ethnic group",
    "Z": "Not stated",
    "99": "Not known",
}

# NHS DD Mental Health Act Legal Status Classification Code (England). There is no CTO code:
# CTO, CTO recall and conditional discharge are held separately (MHSDS), and Wales's 35 (CTO)
# is a different list.
LEGAL_STATUSES: dict[str, str] = {
    "01": "Informal",
    "02": "Detained: section 2",
    "03": "Detained: section 3",
    "04": "Detained: section 4",
    "05": "Detained: section 5(2)",
    "06": "Detained: section 5(4)",
    "07": "Detained: section 35",
    "08": "Detained: section 36",
    "09": "Detained: section 37 with section 41 restrictions",
    "10": "Detained: section 37",
    "12": "Detained: section 38",
    "13": "Detained: section 44",
    "14": "Detained: section 46",
    "15": "Detained: section 47 with section 49 restrictions",
    "16": "Detained: section 47",
    "17": "Detained: section 48 with section 49 restrictions",
    "18": "Detained: section 48",
    "19": "Detained: section 135",
    "20": "Detained: section 136",
    "31": "Detained: Criminal Procedure (Insanity) Act",
    "32": "Detained: other acts",
    "35": "Guardianship: section 7",
    "36": "Guardianship: section 37",
    "37": "Detained: section 45A (limitation direction in force)",
    "38": "Detained: section 45A (limitation direction ended)",
    "98": "Not applicable",
    "99": "Not known",
}

# NHS Data Dictionary NHS NUMBER STATUS INDICATOR CODE, worded as the Dictionary has it: the same
# wording in HL7 UK's CareConnect-NHSNumberVerificationStatus-1 CodeSystem (copied from the
# Dictionary's nhs_number_status_indicator_code page), UK Core's
# UKCore-NHSNumberVerificationStatusEngland and the ITK HL7v2 Reference Tables v1.0.14 (PID-32,
# NSTS01-NSTS08). Only 01 means the number was verified (traced) against the national index.
NHS_NUMBER_STATUSES: dict[str, str] = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS Number or patient detail conflict)",
    "06": "Trace in progress",
    "07": "Number not present and trace not required",
    "08": "Trace postponed (baby under six weeks old)",
}

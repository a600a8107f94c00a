"""What the web UI says, in German (the default) and English, and the codes' labels.

Each page module may bring its own words through ``more_words``; a key means one thing
everywhere, so a key that two modules define differently is an error at import time.
"""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "de": {
        "app": "Integrationsplattform Landsberg am Lech", "skip": "Zum Inhalt springen",
        "nav": "Hauptnavigation", "home": "Start", "courses": "Kursangebot", "partners": "Partnerverzeichnis",
        "info": "Informationen für Neuzugezogene", "sign_in": "Anmelden", "sign_out": "Abmelden",
        "username": "Benutzername", "password": "Passwort", "signed_in_as": "Angemeldet als",
        "bad_sign_in": "Benutzername oder Passwort ist falsch.", "too_many": "Zu viele Versuche; bitte später erneut.",
        "dashboard": "Übersicht", "my_cases": "Fälle meines Teams", "no_cases": "Keine offenen Fälle.",
        "waiting": "Vermittlungen, die auf Antwort des Partners warten", "escalations": "Eskalationen",
        "proposed": "Vorgeschlagene Vermittlungen (noch nicht gesendet)", "none": "Keine.",
        "register": "Neuzugezogene Person anmelden", "register_intro": "Pflichtfelder sind mit * markiert.",
        "given_names": "Vornamen", "family_name": "Familienname", "birth_date": "Geburtsdatum",
        "gender": "Geschlecht", "nationality": "Staatsangehörigkeit",
        "languages": "Sprachen",
        "preferred_language": "Bevorzugte Sprache", "residence_status_group": "Aufenthaltsstatus",
        "arrival_date": "Ankunftsdatum", "street": "Straße", "house_number": "Hausnummer",
        "postal_code": "Postleitzahl", "district": "Ortsteil", "phone": "Telefon", "email": "E-Mail",
        "address": "Adresse", "contact": "Kontakt", "person": "Person", "save": "Anmelden und speichern",
        "errors_title": "Bitte die markierten Angaben prüfen.",
        "duplicate_title": "Möglicherweise schon angemeldet",
        "duplicate_text": "Eine Person mit gleichem Namen und Geburtsdatum ist bereits angemeldet.",
        "different_person": "Das ist eine andere Person: trotzdem anmelden",
        "registered": "Die Person ist angemeldet.", "case": "Fall", "cases": "Fälle", "status": "Status",
        "opened": "Eröffnet", "caseworker": "Integrationslotse", "team": "Team", "open_case": "Fall öffnen",
        "referrals": "Vermittlungen", "service": "Leistung", "partner": "Partner", "reason": "Grund",
        "send": "Senden", "revoke": "Zurückziehen", "timeline": "Verlauf", "goals": "Integrationsplan",
        "no_goals": "Noch keine Ziele.", "due": "Fällig", "consents": "Einwilligungen",
        "no_consents": "Keine Einwilligungen.", "give_consent": "Einwilligung erfassen",
        "partner_id": "Partner (Kennung, z. B. jobcenter-landsberg)", "purpose": "Zweck",
        "record": "Erfassen", "in_force": "gültig", "withdrawn": "widerrufen", "done": "Erledigt.",
        "statistics": "Statistik", "statistics_intro": "Anonymisierte Kennzahlen nach den vier Dimensionen "
        "der Integration; Zellen unter fünf Personen sind unterdrückt.", "period": "Zeitraum",
        "period_hint": "Monat (2026-11), Quartal (2026-Q4) oder Jahr (2026)", "show": "Anzeigen",
        "report_html": "Bericht an den Stadtrat (HTML, druckbar als PDF)", "report_csv": "Kennzahlen als CSV",
        "bad_period": "Bitte einen Zeitraum wie 2026-11, 2026-Q4 oder 2026 angeben.",
        "failed": "Das ging nicht", "portal": "Partnerportal", "your_referrals": "Vermittlungen an Ihre Organisation",
        "accept": "Annehmen", "decline": "Ablehnen", "complete": "Abschließen", "start": "Beginnen",
        "outcome": "Ergebnis", "free_seats": "Freie Plätze", "waiting_list": "Warteliste", "title": "Titel",
        "level": "Ziel-Niveau", "location": "Ort", "category": "Kategorie", "services": "Angebote",
        "free_places": "freie Plätze", "website": "Webseite", "language": "Sprache",
        "choose_language": "Sprache wählen", "forbidden": "Dafür fehlt Ihnen die Berechtigung.",
        "csrf": "Das Formular ist abgelaufen. Bitte laden Sie die Seite neu und versuchen Sie es erneut.",
        "unavailable": "Ein Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal.",
        "not_found": "Nicht gefunden.", "welcome": "Willkommen", "public_intro":
        "Neuzugezogene finden hier Informationen in acht Sprachen, das Kursangebot und die Beratungsstellen. "
        "Mitarbeitende der Stadt und der Partner melden sich an.",
        "sent_at": "Gesendet", "answer_due": "Antwort fällig", "person_data": "Personendaten",
        "needs": "Bedarfe", "event": "Ereignis", "at": "Zeitpunkt", "actions": "Aktionen",
        "lang_switch": "English", "dimension": "Dimension", "yes": "ja", "no": "nein",
        "escalated": "eskaliert", "more": "Details", "admin": "Verwaltung",
    },
    "en": {
        "app": "Integration platform Landsberg am Lech", "skip": "Skip to content",
        "nav": "Main navigation", "home": "Home", "courses": "Courses", "partners": "Partner directory",
        "info": "Information for newcomers", "sign_in": "Sign in", "sign_out": "Sign out",
        "username": "User name", "password": "Password", "signed_in_as": "Signed in as",
        "bad_sign_in": "Wrong user name or password.", "too_many": "Too many attempts; try again later.",
        "dashboard": "Dashboard", "my_cases": "My team's cases", "no_cases": "No open cases.",
        "waiting": "Referrals waiting for a partner's answer", "escalations": "Escalations",
        "proposed": "Proposed referrals (not sent yet)", "none": "None.",
        "register": "Register a newcomer", "register_intro": "Required fields are marked with *.",
        "given_names": "Given names", "family_name": "Family name", "birth_date": "Date of birth",
        "gender": "Gender", "nationality": "Nationality",
        "languages": "Languages",
        "preferred_language": "Preferred language", "residence_status_group": "Residence status",
        "arrival_date": "Arrival date", "street": "Street", "house_number": "House number",
        "postal_code": "Postal code", "district": "District", "phone": "Phone", "email": "Email",
        "address": "Address", "contact": "Contact", "person": "Person", "save": "Register",
        "errors_title": "Please check the marked fields.",
        "duplicate_title": "Possibly registered already",
        "duplicate_text": "A person with the same name and date of birth is registered already.",
        "different_person": "This is a different person: register anyway",
        "registered": "The person is registered.", "case": "Case", "cases": "Cases", "status": "Status",
        "opened": "Opened", "caseworker": "Caseworker", "team": "Team", "open_case": "Open case",
        "referrals": "Referrals", "service": "Service", "partner": "Partner", "reason": "Reason",
        "send": "Send", "revoke": "Revoke", "timeline": "Timeline", "goals": "Integration plan",
        "no_goals": "No goals yet.", "due": "Due", "consents": "Consents",
        "no_consents": "No consents.", "give_consent": "Record a consent",
        "partner_id": "Partner (id, e.g. jobcenter-landsberg)", "purpose": "Purpose",
        "record": "Record", "in_force": "in force", "withdrawn": "withdrawn", "done": "Done.",
        "statistics": "Statistics", "statistics_intro": "Anonymised indicators by the four dimensions of "
        "integration; cells under five people are suppressed.", "period": "Period",
        "period_hint": "Month (2026-11), quarter (2026-Q4) or year (2026)", "show": "Show",
        "report_html": "Report to the city council (HTML, printable as PDF)", "report_csv": "Indicators as CSV",
        "bad_period": "Please give a period such as 2026-11, 2026-Q4 or 2026.",
        "failed": "That did not work", "portal": "Partner portal", "your_referrals": "Referrals to your organisation",
        "accept": "Accept", "decline": "Decline", "complete": "Complete", "start": "Start",
        "outcome": "Outcome", "free_seats": "Free seats", "waiting_list": "Waiting list", "title": "Title",
        "level": "Target level", "location": "Location", "category": "Category", "services": "Services",
        "free_places": "free places", "website": "Website", "language": "Language",
        "choose_language": "Choose a language", "forbidden": "Your role does not allow this.",
        "csrf": "The form has expired. Please reload the page and try again.",
        "unavailable": "A service is not reachable right now. Please try again shortly.",
        "not_found": "Not found.", "welcome": "Welcome", "public_intro":
        "Newcomers find information in eight languages, the course catalogue and the advice centres here. "
        "Staff of the city and its partners sign in.",
        "sent_at": "Sent", "answer_due": "Answer due", "person_data": "Personal data",
        "needs": "Needs", "event": "Event", "at": "At", "actions": "Actions",
        "lang_switch": "Deutsch", "dimension": "Dimension", "yes": "yes", "no": "no",
        "escalated": "escalated", "more": "Details", "admin": "Administration",
    },
}  # fmt: skip

#: Labels for the API's codes; a code without a label is shown as it is.
CODES: dict[str, dict[str, str]] = {
    "de": {
        "proposed": "vorgeschlagen", "sent": "gesendet", "accepted": "angenommen", "declined": "abgelehnt",
        "in_progress": "in Arbeit", "completed": "abgeschlossen", "revoked": "zurückgezogen",
        "expired": "abgelaufen", "referred_elsewhere": "weitervermittelt", "open": "offen", "closed": "geschlossen",
        "asylum_social_counselling": "Asylsozialberatung", "migration_counselling": "Migrationsberatung (MBE)",
        "youth_migration_service": "Jugendmigrationsdienst", "integration_course": "Integrationskurs",
        "course_with_childcare": "Kurs mit Kinderbetreuung", "job_placement": "Arbeitsvermittlung",
        "qualification_recognition": "Anerkennung ausländischer Abschlüsse", "housing_advice": "Wohnberatung",
        "health_advice": "Gesundheitsberatung", "return_counselling": "Rückkehr- und Perspektivberatung",
        "recognition_counselling": "Anerkennungsberatung (IQ)", "job_specific_german": "Berufsbezogenes Deutsch",
        "eu_job_mobility": "EU-Arbeitsmobilität (EURES)", "meeting_offer": "Begegnungsangebot",
        "female": "weiblich", "male": "männlich", "diverse": "divers",
        "unspecified": "ohne Angabe", "eu_citizen": "EU-Bürger/in", "recognised_refugee": "anerkannter Flüchtling",
        "asylum_seeker": "Asylbewerber/in", "tolerated": "Duldung",
        "skilled_worker_or_study_visa": "Fachkräfte- oder Studienvisum",
        "family_reunification": "Familiennachzug", "other": "sonstiges", "referral": "Vermittlung",
        "counselling": "Beratung", "course_enrolment": "Kursanmeldung",
        "no_capacity": "keine Kapazität", "not_eligible": "nicht anspruchsberechtigt",
        "not_our_service": "nicht unser Angebot", "already_supported": "wird bereits betreut",
        "successful": "erfolgreich", "unsuccessful": "nicht erfolgreich",
        "client_refused": "Person hat abgelehnt", "no_longer_needed": "nicht mehr nötig",
        "could_not_contact_client": "Person nicht erreicht", "consent missing": "Einwilligung fehlt",
        "the referral cannot be sent: consent missing":
            "Die Vermittlung kann nicht gesendet werden: Einwilligung fehlt",
        "culture_and_language": "Kultur und Sprache", "placement": "Bildung und Arbeit",
        "interaction": "Soziale Kontakte", "identification": "Zugehörigkeit", "achieved": "erreicht",
        "dropped": "verworfen", "charity": "Wohlfahrtsverband", "job_centre": "Jobcenter", "chamber": "Kammer",
        "adult_education": "Erwachsenenbildung", "city_department": "Stadtverwaltung",
        "youth_service": "Jugendhilfe", "district_office": "Landratsamt", "volunteer_group": "Ehrenamt",
        "german_second_language": "Deutsch als Zweitsprache", "job_german": "Berufssprachkurs",
        "literacy": "Alphabetisierung", "english": "Englisch", "health": "Gesundheit",
        "cultural_education": "Kulturelle Bildung", "civic_education": "Politische Bildung",
        "parents_and_women": "Eltern und Frauen", "orientation": "Orientierungskurs",
        "person_registered": "Person angemeldet", "person_updated": "Personendaten geändert",
        "person_moved_away": "Weggezogen", "consent_given": "Einwilligung erteilt",
        "consent_withdrawn": "Einwilligung widerrufen", "needs_assessed": "Bedarf erhoben",
        "case_opened": "Fall eröffnet", "case_assigned": "Fall zugewiesen", "case_closed": "Fall geschlossen",
        "case_reopened": "Fall wieder geöffnet", "referral_referred_elsewhere": "Vermittlung weitervermittelt",
        "registered": "angemeldet", "moved_away": "weggezogen", "erased": "Daten gelöscht",
        "referral_proposed": "Vermittlung vorgeschlagen",
        "referral_sent": "Vermittlung gesendet", "referral_accepted": "Vermittlung angenommen",
        "referral_declined": "Vermittlung abgelehnt", "referral_started": "Vermittlung begonnen",
        "referral_completed": "Vermittlung abgeschlossen", "referral_revoked": "Vermittlung zurückgezogen",
        "referral_escalated": "Vermittlung eskaliert", "referral_expired": "Vermittlung abgelaufen",
        "goal_set": "Ziel gesetzt", "goal_updated": "Ziel geändert", "enrolled": "Kursanmeldung",
        "waitlisted": "Auf der Warteliste", "course_completed": "Kurs abgeschlossen",
        "enrolment_requested": "Kursanmeldung angefragt", "seat_offered": "Kursplatz angeboten",
        "offer_expired": "Platzangebot abgelaufen", "enrolment_cancelled": "Kursanmeldung storniert",
        "attendance_recorded": "Anwesenheit erfasst", "pass_entry_added": "Eintrag im Bildungspass",
    },
    "en": {
        "in_progress": "in progress", "referred_elsewhere": "referred elsewhere",
        "asylum_social_counselling": "Asylum social counselling", "migration_counselling": "Migration counselling",
        "youth_migration_service": "Youth migration service", "integration_course": "Integration course",
        "course_with_childcare": "Course with childcare", "job_placement": "Job placement",
        "qualification_recognition": "Recognition of foreign qualifications", "housing_advice": "Housing advice",
        "health_advice": "Health advice", "return_counselling": "Return and perspective counselling",
        "recognition_counselling": "Recognition counselling (IQ)", "job_specific_german": "Job-specific German",
        "eu_job_mobility": "EU job mobility (EURES)", "meeting_offer": "Meeting offer",
        "eu_citizen": "EU citizen", "recognised_refugee": "recognised refugee",
        "asylum_seeker": "asylum seeker", "tolerated": "tolerated (Duldung)",
        "skilled_worker_or_study_visa": "skilled worker or study visa", "family_reunification": "family reunification",
        "course_enrolment": "course enrolment", "no_capacity": "no capacity", "not_eligible": "not eligible",
        "not_our_service": "not our service", "already_supported": "already supported",
        "client_refused": "client refused", "no_longer_needed": "no longer needed",
        "could_not_contact_client": "could not contact the client", "culture_and_language": "culture and language",
        "adult_education": "adult education", "job_centre": "job centre", "city_department": "city department",
        "youth_service": "youth service", "district_office": "district office", "volunteer_group": "volunteer group",
        "german_second_language": "German as a second language", "job_german": "German for work",
        "civic_education": "civic education", "cultural_education": "cultural education",
        "parents_and_women": "parents and women",
    },
}  # fmt: skip

#: Validation messages (Pydantic error types) in the UI's languages.
FIELD_ERRORS: dict[str, dict[str, str]] = {
    "de": {
        "missing": "Bitte ausfüllen.", "string_too_short": "Bitte ausfüllen.", "too_short": "Bitte ausfüllen.",
        "string_pattern_mismatch": "Das Format stimmt nicht.", "string_too_long": "Die Angabe ist zu lang.",
        "date_from_datetime_parsing": "Bitte ein gültiges Datum angeben.", "date_parsing": "Bitte ein gültiges "
        "Datum angeben.", "date_from_datetime_inexact": "Bitte ein gültiges Datum angeben.",
        "enum": "Bitte einen der angebotenen Werte wählen.", "district": "Diesen Ortsteil gibt es nicht.",
        "value_error": "Die Angabe ist nicht gültig.", "extra_forbidden": "Dieses Feld ist nicht vorgesehen.",
        "int_parsing": "Bitte ganze Zahlen angeben, durch Komma getrennt.", "greater_than_equal":
        "Die Zahl ist zu klein.", "less_than_equal": "Die Zahl ist zu groß.", "too_long": "Das sind zu viele.",
        "date_type": "Bitte ein gültiges Datum angeben.", "literal_error": "Bitte einen der Werte wählen.",
    },
    "en": {
        "missing": "Please fill this in.", "string_too_short": "Please fill this in.",
        "too_short": "Please fill this in.", "string_pattern_mismatch": "The format is not right.",
        "string_too_long": "This is too long.", "date_from_datetime_parsing": "Please give a valid date.",
        "date_parsing": "Please give a valid date.", "date_from_datetime_inexact": "Please give a valid date.",
        "enum": "Please choose one of the offered values.", "district": "There is no such district.",
        "value_error": "This is not valid.", "extra_forbidden": "This field is not expected.",
        "int_parsing": "Please give whole numbers, separated by commas.", "greater_than_equal":
        "The number is too small.", "less_than_equal": "The number is too large.", "too_long": "Those are too many.",
        "date_type": "Please give a valid date.", "literal_error": "Please choose one of the values.",
    },
}  # fmt: skip


def more_words(extra: dict[str, dict[str, str]]) -> None:
    """Add a page module's words; both languages must name the same keys."""
    if set(extra) != set(WORDS) or len({frozenset(v) for v in extra.values()}) != 1:
        raise ValueError("more_words needs the same keys in every language")
    for lang, entries in extra.items():
        for key, text in entries.items():
            if WORDS[lang].setdefault(key, text) != text:
                raise ValueError(f"UI word {key!r} ({lang}) is defined twice, differently")

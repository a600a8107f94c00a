"""Registration service (Einwohnermeldeamt): newcomers' personal data, needs, consents, information packs."""

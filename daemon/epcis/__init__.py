"""GS1 EPCIS 2.0 for posd: the ledger's unit events as EPCIS ObjectEvents, and a
supplier's advance ship notice (EPCIS) as the units a purchase order will bring.

    places = Places({"NORTH": "4012345000009"})          # branches with a GLN
    document = DocumentWriter(out, places, product_gtins(ledger).get, created=now)
    for event in history(ledger, Selection(branch="NORTH")):  # oldest first
        document.add(event)                  # skipped when it moves no unit
    document.close()

- `identifiers`: EPCs (GS1 Digital Link with a GTIN, posd's own URI without),
  locations (a GLN when the branch has one), documents.
- `mapping`: one ledger event to one ObjectEvent (CBV 2.0 bizStep, disposition).
- `eventhash`: the event hash ID (`ni:///sha-256;…?ver=CBV2.0`) from CBV 2.0.
- `writer`: the EPCIS document, written as it goes (constant memory).
- `asn`: reading an EPCIS document from a supplier into expected units.

The ledger knows nothing of EPCIS: this package reads what it records.
"""

"""GS1 EPCIS 2.0 for posd: the ledger's unit events as EPCIS ObjectEvents, and a
supplier's advance ship notice (EPCIS) as the units a purchase order will bring.

    doc = DocumentWriter(out, Places(gln={"NORTH": "4012345000009"}))
    for event in history:                 # the ledger's events, oldest first
        doc.add(event, gtins)             # skipped when it is no unit movement
    doc.close()

- `identifiers`: EPCs (GS1 Digital Link with a GTIN, posd's own URI without),
  locations (a GLN when the branch has one), documents.
- `mapping`: one ledger event to one ObjectEvent (CBV 2.0 bizStep, disposition).
- `eventhash`: the event hash ID (`ni:///sha-256;…?ver=CBV2.0`) from CBV 2.0.
- `writer`: the EPCIS document, written as it goes (constant memory).
- `asn`: reading an EPCIS document from a supplier into expected units.

The ledger knows nothing of EPCIS: this package reads what it records.
"""

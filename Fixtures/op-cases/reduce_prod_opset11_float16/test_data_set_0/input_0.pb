
BdataJR8Š8;;ö9b=ø<
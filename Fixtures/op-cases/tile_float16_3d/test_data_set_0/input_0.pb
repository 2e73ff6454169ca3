
BinputJ"8“½V=Ø2c?½
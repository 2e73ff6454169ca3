B
zero_pointJþ
B
zero_pointJù
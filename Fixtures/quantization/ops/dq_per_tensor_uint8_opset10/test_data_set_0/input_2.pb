B
zero_pointJƒ
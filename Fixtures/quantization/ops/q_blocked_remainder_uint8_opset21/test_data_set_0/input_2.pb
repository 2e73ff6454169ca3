B
zero_pointJÆ7zèÄ. c{·˜£ˆ
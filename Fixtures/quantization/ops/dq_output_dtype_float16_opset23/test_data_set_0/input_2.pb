B
zero_pointJ
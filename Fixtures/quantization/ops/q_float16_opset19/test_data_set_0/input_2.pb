B
zero_pointJ
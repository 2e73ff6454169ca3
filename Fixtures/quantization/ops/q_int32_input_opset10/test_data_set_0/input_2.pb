B
zero_pointJ

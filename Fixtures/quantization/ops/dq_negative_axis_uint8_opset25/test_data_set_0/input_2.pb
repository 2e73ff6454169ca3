B
zero_pointJ€ÿ
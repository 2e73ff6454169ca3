B
zero_pointJусхо
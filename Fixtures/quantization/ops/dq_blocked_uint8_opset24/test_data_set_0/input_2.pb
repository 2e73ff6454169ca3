B
zero_pointJ@‚N`Hm¼Ä¬€
BscaleJ
ף<
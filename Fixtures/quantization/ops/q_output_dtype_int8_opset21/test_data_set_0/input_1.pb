BscaleJ
×#=
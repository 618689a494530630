-- Offers the "rotate" action on OAuthClients.
local actions = {}
actions["rotate"] = {["disabled"] = false}
return actions

-- Argo CD health of OAuthApp and OAuthClient, from status.observedGeneration and Ready.
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for oauth-operator"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "oauth-operator has not reconciled the latest spec yet"
  return hs
end
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    if condition.status == "True" then
      hs.status = "Healthy"
    else
      hs.status = "Degraded"
    end
    hs.message = condition.message
    return hs
  end
end
hs.status = "Progressing"
hs.message = "No Ready condition yet"
return hs

-- Argo CD health of OAuthApp and OAuthClient, read from the kstatus conditions the operator
-- writes: Healthy when Ready at the current generation; Degraded only when Stalled (nothing
-- changes until someone changes something); Progressing otherwise (waiting for an app, a
-- Secret, the backend), with the message of the condition that says why.
local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.conditions == nil then
  return {status = "Progressing", message = "Waiting for oauth-operator"}
end
local conditions = status.conditions
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return {status = "Progressing", message = "oauth-operator has not reconciled the latest spec yet"}
end
local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = stalled.message}
end
local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message}
end
local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = reconciling.message}
end
if ready ~= nil then
  return {status = "Progressing", message = ready.message}
end
return {status = "Progressing", message = "Waiting for oauth-operator"}

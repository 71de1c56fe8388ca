Feature: Alerting in the dashboard
  Rules watch a tenant's metrics and notify channels. The inbox shows what fires, the header
  counts it on every page, charts mark where an alert changed and draw the rule's threshold,
  and the alerting screens work with the keyboard alone.

  @timeout:60000
  Scenario: A rule cpu > 90 with a webhook fires when the agent reports 95
    Given a webhook receiver is listening
    And a tenant exists and I am signed in to its dashboard
    And a rule "e2e cpu high" on "e2e.cpu_percent" of agent "e2e-alerting" above 90 notifying the webhook
    When the agent "e2e-alerting" reports "e2e.cpu_percent" 95
    Then the inbox shows "e2e cpu high" firing as critical on "e2e-alerting" within 10000 ms
    And the header counts at least 1 firing alert within 10000 ms
    And the "alert inbox" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I open the "Overview" screen
    Then the host "e2e-alerting" shows 1 firing alert within 15000 ms
    And the "overview with a firing alert" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I open the dashboard of tenant "demo"
    Then the "e2e.cpu_percent" chart shows a red marker where "e2e cpu high" fired within 10000 ms
    And the "e2e.cpu_percent" chart draws the rule's threshold
    And the webhook received one notification for "e2e cpu high" within 10000 ms
    When the agent "e2e-alerting" reports "e2e.cpu_percent" 96
    Then the alert "e2e cpu high" shows the value 96 within 10000 ms
    And the webhook still has one notification for "e2e cpu high"

  Scenario: A channel's test message is delivered and shows in its delivery log
    Given a webhook receiver is listening
    And a tenant exists and I am signed in to its dashboard
    And a webhook channel "e2e test hook" to the receiver
    When I open the alerting "Channels" screen of tenant "demo"
    And I send a test message to "e2e test hook"
    Then the channels screen says the test message to "e2e test hook" was sent within 10000 ms
    And the delivery log shows a sent "test" notification
    And the webhook received a test message within 5000 ms
    And the "channels" screen has no WCAG 2.2 AA violations at desktop and phone sizes

  Scenario: A rule is created with the keyboard alone, fixing what the server refuses
    Given a tenant exists and I am signed in to its dashboard
    And the agent "e2e-kbd" reports "e2e.kbd_percent" 42
    And a webhook channel "e2e kbd hook" to "http://127.0.0.1:9/hook"
    When I open the alerting "Rules" screen of tenant "demo"
    And I tab to the link "New rule" and press Enter
    Then the "Name" field has the focus
    When I type "e2e kbd rule"
    And I tab to the "Metric" field and choose "e2e.kbd_percent"
    And I tab to the "Critical threshold" field and type "80"
    And I tab to the "Warning threshold" field and type "95"
    And I tab to the checkbox "e2e kbd hook (webhook)" and press Space
    And I tab to the button "Create rule" and press Enter
    Then the "Warning threshold" field shows the error "must be below critical" within 5000 ms
    And the "Warning threshold" field has the focus
    And the "alert rule form" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I select the text of the focused field and type "70"
    Then the preview says "e2e-kbd now 42%: would be ok" within 10000 ms
    When I tab to the button "Create rule" and press Enter
    Then the rules list shows "e2e kbd rule" notifying "e2e kbd hook" within 5000 ms
    And every element I tabbed to showed a visible focus indicator
    And the "alert rules" screen has no WCAG 2.2 AA violations at desktop and phone sizes

  Scenario: A channel is created and renamed through its form, keeping its secret
    Given a tenant exists and I am signed in to its dashboard
    When I open the alerting "Channels" screen of tenant "demo"
    And I click the link "New channel"
    And I fill in "Name" with "e2e form hook"
    And I fill in "URL" with "http://127.0.0.1:9/form"
    And I fill in "Secret" with "s3cret"
    And I press the button "Create channel"
    Then the channels list shows "e2e form hook" with a secret set within 5000 ms
    When I click the link "Edit channel e2e form hook"
    Then the "Secret" field is empty and says a secret is set
    And the "channel form" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I fill in "Name" with "e2e form hook 2"
    And I press the button "Save channel"
    Then the channels list shows "e2e form hook 2" with a secret set within 5000 ms
    When I delete the channel "e2e form hook 2", confirming
    Then the channels list does not show "e2e form hook 2" within 5000 ms

  Scenario: Without the alerting API the screens say so and the charts still work
    Given the server has no alerting API
    And a tenant exists and I am signed in to its dashboard
    When I POST the metric "e2e.no_alerting" with value 5
    Then the value 5 is on the "e2e.no_alerting" chart within 2000 ms
    And the header shows no firing count
    When I open the alerting "Inbox" screen of tenant "demo"
    Then the inbox says alerting is not available

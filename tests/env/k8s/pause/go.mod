module opspilot.test/pause

go 1.21
